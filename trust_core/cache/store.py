"""Content-addressed, on-disk store of saliency maps and metrics (diskcache over SQLite).

A key is the SHA-256 of an explicit description — image digest, model fingerprint (weights hash and
randomization state), method, the method's parameters and the code version — never an accident of
argument order. diskcache commits each value in one SQLite transaction after its file is fully written,
so an interrupted computation leaves no entry and several processes can share one folder. The size is
bounded (least-recently-stored entries are evicted).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

DEFAULT_DIR = Path("cache/store")
DEFAULT_SIZE_LIMIT = 8 * 2**30


def digest_array(array) -> str:
    """SHA-256 of an array's dtype, shape and bytes (float32 for tensors)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().to("cpu", torch.float32).contiguous().numpy()
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hash of architecture name, weights and buffers, and randomization state."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(getattr(model, "trust_arch", type(model).__name__)).encode())
    h.update(json.dumps(getattr(model, "trust_state", None), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def make_key(**parts) -> str:
    """Stable key from named parts (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Store:
    """A shared, size-bounded, crash-safe key → value store.

    Parameters
    ----------
    directory : folder of the store (default ``cache/store`` or ``$TRUST_CACHE``).
    size_limit : bytes kept before eviction.
    """

    def __init__(self, directory: str | Path | None = None, *, size_limit: int = DEFAULT_SIZE_LIMIT):
        import diskcache

        self.directory = Path(directory or os.environ.get("TRUST_CACHE") or DEFAULT_DIR)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(self.directory), size_limit=size_limit,
                                      eviction_policy="least-recently-stored", timeout=60)

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

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def volume(self) -> int:
        return self._cache.volume()

    def clear(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        self._cache.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
