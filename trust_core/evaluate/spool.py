"""Where an evaluation keeps its maps between computing and scoring: on disk, not in memory.

Each unit's maps are written to a spool folder the moment the unit finishes (in the form the store keeps,
:mod:`trust_core.cache.codec`, when that gives back these very maps — float32 otherwise: nothing is lost
that the scores would see) and only their flags, targets
and statistics stay in memory. Scoring reads back the maps each criterion compares, one stack at a time
(:class:`SpooledMaps` is a read-only ``(model, state) → image → method → map`` mapping). Memory then stays
flat however many image-model-state pairs a run has: what a paper run at 320 px held in RAM (≈14 GB) is on
disk (at most ≈160 KB a 320² map, compact) for as long as the run lasts, and removed after it. (Grad-CAM's
coarse-map form needs the coarse map, which unit outputs do not carry: in the spool those maps take the
neighbour-predicted form, ≈55–110 KB at 320².)
"""
from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..cache.codec import decode_form, pack

CLIPPED_FORM, UNCLIPPED_FORM = 0, 1
RAW_PIXELS = 160 * 160  # maps up to this size wait as they are (no compression: faster, ≤ 200 KB each)


class MapSpool:
    """Unit outputs' maps, appended to files in ``directory`` (a fresh temporary folder inside it)."""

    def __init__(self, directory: str | Path | None = None, *, storage: str = "compact"):
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        _remove_orphans(Path(directory or tempfile.gettempdir()))
        self.folder = Path(tempfile.mkdtemp(prefix=f"trust-spool-{socket.gethostname()}-{os.getpid()}-",
                                            dir=directory))
        self.storage = storage
        # (model index, state, noisy copy) → image id → method → (file number, offset, length)
        self.index: dict[tuple[int, str, int], dict[str, dict[str, tuple[int, int, int]]]] = {}
        self.files = 0
        self.count = 0  # maps spooled
        self.rank: dict[tuple[int, str], int] = {}  # (model, state) → its place in the run's plan

    def plan(self, units) -> None:
        """Order the states as the run planned them (units may finish in another order: the Ray engine)."""
        for k, unit in enumerate(units):
            self.rank.setdefault((unit.model_index, unit.state), k)

    def add(self, unit, output):
        """Spool a :class:`~trust_core.evaluate.units.UnitOutput`'s maps (both forms) and return it without them
        (what scoring keeps in memory)."""
        number = self.files
        self.files += 1
        path = self.folder / f"{number}.bin"
        offset = 0
        where = self.index.setdefault((unit.model_index, unit.state, unit.noisy_copy), {})
        with open(path, "wb") as handle:
            for image_id, method, clipped, unclipped in output.per_image():
                same = unclipped is clipped or np.array_equal(unclipped, clipped, equal_nan=True)
                self.count += 1
                if clipped.size <= RAW_PIXELS:  # small maps wait as they are (no compression to pay)
                    packed = {"codec": "raw", "forms": (clipped, None if same else unclipped)}
                else:
                    packed = _lossless(clipped, None if same else unclipped, self.storage, output.percentile)
                blob = pickle.dumps(packed, protocol=5)
                handle.write(blob)
                where.setdefault(image_id, {})[method] = (number, offset, len(blob))
                offset += len(blob)
        return output.without_maps()

    def read(self, location: tuple[int, int, int], form: int) -> np.ndarray:
        number, offset, length = location
        with open(self.folder / f"{number}.bin", "rb") as handle:
            handle.seek(offset)
            packed = pickle.loads(handle.read(length))
        if packed["codec"] == "raw":
            clipped, unclipped = packed["forms"]
            return clipped if form == CLIPPED_FORM or unclipped is None else unclipped
        return decode_form(packed, form)

    def maps(self, form: int, *, noisy: bool = False) -> "SpooledMaps":
        """The spooled maps of one form: those of the images themselves, or (``noisy``) sMPRT's noisy copies."""
        return SpooledMaps(self, form, noisy)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _remove_orphans(directory: Path) -> None:
    """Remove the spools of runs of this host whose process is gone (killed before it could clean up)."""
    from ..io import process_alive

    host = socket.gethostname()
    for folder in directory.glob(f"trust-spool-{host}-*-*"):
        pid = folder.name[len(f"trust-spool-{host}-"):].split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _lossless(clipped, unclipped, storage, percentile) -> dict:
    """The compact form when it gives these very maps back (maps the store gave: the usual case), else
    float32 (a map resized to the first model's size, or maps kept exactly)."""
    if storage != "exact":
        packed, (back_clipped, back_unclipped) = pack(clipped, unclipped, storage=storage, percentile=percentile)
        if np.array_equal(back_clipped, clipped, equal_nan=True) and np.array_equal(
                back_unclipped, clipped if unclipped is None else unclipped, equal_nan=True):
            return packed
    return pack(clipped, unclipped, storage="exact")[0]


class SpooledMaps(Mapping):
    """``(model index, state) → image id → method → map`` (noisy: → a list of maps, one per noisy copy, in
    copy order), each read from the spool when asked for."""

    def __init__(self, spool: MapSpool, form: int, noisy: bool):
        self.spool, self.form, self.noisy = spool, form, noisy

    def _keys(self) -> list[tuple[int, str]]:  # in the run's plan order (models, then their cascade)
        keys = list(dict.fromkeys((m, s) for (m, s, k) in self.spool.index if (k > 0) == self.noisy))
        return sorted(keys, key=lambda key: self.spool.rank.get(key, len(self.spool.rank)))

    def __getitem__(self, key):
        model_index, state = key
        if not self.noisy:
            where = self.spool.index.get((model_index, state, 0))
            if where is None:
                raise KeyError(key)
            return _Images(self.spool, self.form, [where])
        copies = sorted(k for (m, s, k) in self.spool.index if (m, s) == (model_index, state) and k > 0)
        if not copies:
            raise KeyError(key)
        return _Images(self.spool, self.form, [self.spool.index[(model_index, state, k)] for k in copies],
                       listed=True)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


class _Images(Mapping):
    def __init__(self, spool, form, indices, listed: bool = False):
        self.spool, self.form, self.indices, self.listed = spool, form, indices, listed

    def __getitem__(self, image_id):
        if not any(image_id in where for where in self.indices):
            raise KeyError(image_id)
        return _Methods(self.spool, self.form, [where[image_id] for where in self.indices if image_id in where],
                        self.listed)

    def __iter__(self):
        seen = {}
        for where in self.indices:
            seen.update(dict.fromkeys(where))
        return iter(seen)

    def __len__(self) -> int:
        return len(set().union(*[set(where) for where in self.indices]))


class _Copies(Sequence):
    def __init__(self, spool, form, locations):
        self.spool, self.form, self.locations = spool, form, locations

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        return self.spool.read(self.locations[k], self.form)

    def __len__(self) -> int:
        return len(self.locations)


class _Methods(Mapping):
    def __init__(self, spool, form, locations, listed):
        self.spool, self.form, self.locations, self.listed = spool, form, locations, listed

    def __getitem__(self, method):
        if self.listed:  # each copy read when indexed, not the whole list at once
            return _Copies(self.spool, self.form, [where[method] for where in self.locations])
        return self.spool.read(self.locations[0][method], self.form)

    def __iter__(self):
        return iter(self.locations[0])

    def __len__(self) -> int:
        return len(self.locations[0])
