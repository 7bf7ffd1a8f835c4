"""Content-addressed, on-disk store of saliency maps and metrics (diskcache over SQLite).

A key is the SHA-256 of an explicit description — image digest, model fingerprint (weights hash and
randomization state), method, the method's parameters and the code version — never an accident of
argument order. diskcache commits each value in one SQLite transaction after its file is fully written,
so an interrupted computation leaves no entry and several processes can share one folder. The size is
bounded (least-recently-stored entries are evicted); a run that plans more maps than the bound holds
raises it for itself (:meth:`Store.reserve`), so that it never evicts its own maps. Maps are kept in the
form :mod:`trust_core.cache.codec` describes (``map_storage``: compact, or exact).

Several processes (app sessions, CLI runs, workers) asking for the same missing entry at once would
each compute it. :meth:`Store.claim` prevents that: the first caller claims the key and computes, the
others :meth:`Store.wait_for` its value. A claim names its holder (host and process id); a claim whose
holder died (``kill -9``) is taken over at once on the same host, and expires after ``CLAIM_TTL``
seconds otherwise, so a crash never blocks anyone for long.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import torch

from ..io import process_alive as _alive
from ..models.info import info_of
from .codec import DEFAULT_MAP_STORAGE, MAP_STORAGES

DEFAULT_DIR = Path("cache/store")
DEFAULT_SIZE_LIMIT = 8 * 2**30
CLAIM_TTL = 3600.0  # seconds before a claim held by a process on another host is presumed dead
_HOST = socket.gethostname()


def _holder_died(holder: dict) -> bool:
    """A claim's holder is known dead: a process of this host that no longer runs."""
    return holder.get("host") == _HOST and not _alive(int(holder.get("pid", -1)))


def digest_array(array) -> str:
    """SHA-256 of an array's dtype, shape and bytes (float32 for tensors)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().to("cpu", torch.float32).contiguous().numpy()
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def weights_digest(model: torch.nn.Module) -> str:
    """Hash of architecture name, weights and buffers only: two copies with equal weights share it,
    whatever randomization run tagged them (the seed of per-model SmoothGrad noise)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(info_of(model).arch or type(model).__name__).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_fingerprint(model: torch.nn.Module, weights: str | None = None) -> str:
    """Hash of the weights (see :func:`weights_digest`, passed when already computed) and the
    randomization state: the model part of every cache key."""
    h = hashlib.blake2b(digest_size=16)
    h.update((weights or weights_digest(model)).encode())
    h.update(json.dumps(info_of(model).state, sort_keys=True, default=str).encode())
    spec = info_of(model).spec
    if spec:  # a spec'd model: its preprocessing, head, target and layer choices (registry models: none)
        h.update(json.dumps(spec, sort_keys=True, default=str).encode())
    return h.hexdigest()


def make_key(**parts) -> str:
    """Stable key from named parts (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Store:
    """A shared, size-bounded, crash-safe key → value store.

    Parameters
    ----------
    directory : folder of the store (default ``cache/store`` or ``$TRUST_CACHE``).
    size_limit : bytes kept before eviction (raised by :meth:`reserve` for a run that needs more). None:
        the store's own (``DEFAULT_SIZE_LIMIT`` for a new store; a limit a run raised stays raised).
    map_storage : how maps are kept ('compact' or 'exact', see :mod:`trust_core.cache.codec`);
        'exact' maps have keys of their own, so that one store can hold both.
    """

    def __init__(self, directory: str | Path | None = None, *, size_limit: int | None = None,
                 map_storage: str = DEFAULT_MAP_STORAGE):
        import diskcache

        import sqlite3

        from ..errors import ConfigError
        from ..io import writable_folder

        if map_storage not in MAP_STORAGES:
            raise ConfigError(f"map storage must be one of {MAP_STORAGES}, got {map_storage!r}")
        self.map_storage = map_storage
        self.directory = Path(directory or os.environ.get("TRUST_CACHE") or DEFAULT_DIR)
        what = "the cache folder (--cache, or $TRUST_CACHE)"
        writable_folder(self.directory, what=what)  # before sqlite meets it: a clear error, nothing created
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # No memory-mapped database: its pages would count in the process's resident memory, growing
            # with the store up to 64 MB (diskcache's default) while a run's memory should stay flat.
            self._cache = diskcache.Cache(str(self.directory), eviction_policy="least-recently-stored",
                                          timeout=60, sqlite_mmap_size=0)
            fresh = self._cache.size_limit == 2**30  # diskcache's own default: a store this tool never sized
            if size_limit is not None or fresh:
                self._cache.reset("size_limit", int(size_limit or DEFAULT_SIZE_LIMIT))
            # Claims live in their own small database, so that they never count or evict as entries.
            self._claims = diskcache.Cache(str(self.directory / "claims"), timeout=60)
            with self._cache.transact():  # a read-only database file opens, and fails at the first write
                self._cache.touch("__trust_write_check__")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{what} {self.directory} cannot be used: {exc}. Choose a writable folder with "
                              f"--cache, or run with --no-cache") from None

    def get(self, key: str, default=None):
        return self._cache.get(key, default=default)

    def get_many(self, keys: list[str]) -> dict[str, object]:
        out = {}
        for key in keys:
            value = self._cache.get(key, default=None)
            if value is not None:
                out[key] = value
        return out

    def set(self, key: str, value) -> None:
        self._cache.set(key, value)

    def add(self, key: str, value) -> bool:
        """Store only if absent (atomic); True when this call stored it."""
        return self._cache.add(key, value)

    # -- claims: one computation of a missing entry across processes ------------------------------
    def claim(self, key: str) -> bool:
        """Become the one caller computing ``key``; False when a live holder already has it."""
        token = {"host": _HOST, "pid": os.getpid(), "time": time.time()}
        for _ in range(3):
            if self._claims.add(key, token, expire=CLAIM_TTL):
                return True
            holder = self._claims.get(key)
            if holder is None:
                continue  # released between add and get: try again
            if _holder_died(holder):
                self._claims.delete(key)  # its holder was killed: take over
                continue
            return False
        return False

    def release(self, key: str) -> None:
        """Give up a claim taken by :meth:`claim` (after storing the value, or on failure)."""
        holder = self._claims.get(key)
        if holder is not None and holder.get("host") == _HOST and holder.get("pid") == os.getpid():
            self._claims.delete(key)

    @contextlib.contextmanager
    def computing(self, keys):
        """Claim each of ``keys`` that no other process or session is computing, wait for the ones that
        are, and yield what arrived meanwhile (key → value); the claims are released on exit, whatever
        happens — compute and :meth:`set` the claimed keys inside the block."""
        keys = list(keys)
        claimed = [key for key in keys if self.claim(key)]
        try:
            others = sorted(set(keys) - set(claimed))
            yield self.wait_for(others) if others else {}
        finally:
            for key in claimed:
                self.release(key)

    def wait_for(self, keys, *, poll: float = 0.05, timeout: float | None = None) -> dict[str, object]:
        """Wait until each key has a value or nobody live holds its claim; return the values found."""
        pending, found = set(keys), {}
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            for key in list(pending):
                value = self._cache.get(key, default=None)
                if value is not None:
                    found[key] = value
                    pending.discard(key)
                    continue
                holder = self._claims.get(key)
                if holder is None or _holder_died(holder):
                    pending.discard(key)  # released without a value, or its holder died
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(poll)
                poll = min(poll * 1.5, 1.0)
        return found

    def integrity(self) -> list[str]:
        """Problems found by SQLite's and diskcache's consistency checks (empty when the store is sound)."""
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._cache.check(fix=False)
            self._claims.check(fix=False)
        return [str(w.message) for w in caught]

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def volume(self) -> int:
        return self._cache.volume()

    @property
    def size_limit(self) -> int:
        return int(self._cache.size_limit)

    def reserve(self, planned: int) -> str | None:
        """Make room for a run that will store up to ``planned`` bytes of maps, so that it never evicts its
        own: the store culls its least recently stored entries first, so a limit of at least the plan (with
        a tenth to spare) keeps every map the run stores; the limit is raised to that when it is lower, and
        stays raised (the app browses those maps). Returns a note when the limit was raised, or when the disk
        lacks the room for the maps and their spool (the run would fail writing); None otherwise."""
        import shutil

        note = None
        limit = self.size_limit
        if 1.1 * planned > limit:  # the store culls its least recently stored entries: never this run's
            self._cache.reset("size_limit", int(1.1 * planned))
            note = (f"the run plans ≈{planned / 2**30:.1f} GiB of maps, more than the store {self.directory} "
                    f"keeps ({limit / 2**30:.1f} GiB): its limit is raised to {self.size_limit / 2**30:.1f} GiB so "
                    f"that the run keeps every map it computes")
        free = shutil.disk_usage(self.directory).free
        if 2 * planned > free:  # the maps, and their spool while the run lasts
            note = ((note + "; ") if note else "") + (
                f"the disk of {self.directory} has {free / 2**30:.1f} GiB free for ≈{2 * planned / 2**30:.1f} GiB "
                f"(the maps, and their spool until the run is scored): free some space or choose another --cache")
        return note

    def clear(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        self._cache.close()
        self._claims.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
