"""How a saliency map is kept in the store: exactly while that is small, in half precision beyond.

A map has two forms (``postprocess``): the *unclipped* map ``|a| / max |a|`` and the *clipped* map the
paper scores, which is the unclipped map put through the percentile clip and min–max
(:func:`~trust_core.saliency.postprocess.normalize_maps` is invariant to the positive rescaling between
them). Two storages (``--map-storage``):

``compact`` (the default)
    A map whose exact form (both forms in float32, byte planes deflated) takes at most ``MAP_BUDGET``
    (120 KB) is kept exactly: every map up to about 128² (the demo's size), and the piecewise-constant
    maps (XRAI) at any size. A larger map keeps one array: its unclipped form as IEEE half floats (round to
    nearest: a relative error ≤ 2⁻¹¹ ≈ 4.9e-4, the smallest values as subnormals), the two bytes in planes
    (the exponent plane compresses well), deflated; the clipped form is derived on read by the same
    ``normalize_maps`` (a min–max-only map, Guided Grad-CAM, is its own unclipped form). About 100–150 KB
    for a noise-like 320² gradient map, 60 KB for Grad-CAM, against 800 KB for both forms in float32.
    ``trust bench scale`` measures the size; ``tests/evaluate/test_scale.py`` and the bench the effect on
    every criterion.
``exact``
    Both forms exactly, deflated, whatever their size: the maps, and so every score, bit for bit as
    computed (about 650 KB for a noise-like 320² map).

Every evaluation scores the maps in the form the store keeps (also without a store), so a run scores the
same maps whether they were computed now or read back, on a first run as on a rerun.
"""
from __future__ import annotations

import zlib

import numpy as np

MAP_STORAGES = ("compact", "exact")
DEFAULT_MAP_STORAGE = "compact"
MAP_BUDGET = 120 * 1024  # bytes: a map kept exactly up to this, in half precision beyond (compact)
MAX_ERROR = 1e-3  # the largest error a derived clipped map may carry; beyond, the clipped form is kept too
_LEVEL = 6


def _planes(array: np.ndarray) -> bytes:
    """The bytes of ``array`` grouped by position in the word (all first bytes, then all second…)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    return flat.view(np.uint8).reshape(-1, flat.dtype.itemsize).T.tobytes()


def _unplanes(data: bytes, dtype, shape) -> np.ndarray:
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    planes = np.frombuffer(data, np.uint8).reshape(dtype.itemsize, size)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)


def _pack(array: np.ndarray, dtype) -> dict:
    array = np.asarray(array, dtype=dtype)
    return {"dtype": np.dtype(dtype).str, "shape": list(array.shape),
            "data": zlib.compress(_planes(array), _LEVEL)}


def _unpack(packed: dict) -> np.ndarray:
    return _unplanes(zlib.decompress(packed["data"]), packed["dtype"], tuple(packed["shape"])).astype(np.float32)


def _derived(unclipped: np.ndarray, percentile: float) -> np.ndarray:
    import torch

    from ..saliency.postprocess import normalize_maps

    maps, _reasons = normalize_maps(torch.from_numpy(np.ascontiguousarray(unclipped, np.float32))[None], percentile)
    return maps[0].numpy()


def encode(clipped: np.ndarray, unclipped: np.ndarray | None, *, storage: str = DEFAULT_MAP_STORAGE,
           percentile: float | None = None, budget: int | None = None) -> dict:
    """One map's two forms → what the store keeps. ``unclipped`` None: a min–max-only map (one form);
    ``percentile``: the clip that derives the clipped form from the unclipped one; ``budget``: the bytes up to
    which compact storage keeps a map exactly (default ``MAP_BUDGET``)."""
    return pack(clipped, unclipped, storage=storage, percentile=percentile, budget=budget)[0]


def pack(clipped: np.ndarray, unclipped: np.ndarray | None, *, storage: str = DEFAULT_MAP_STORAGE,
         percentile: float | None = None, budget: int | None = None) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """:func:`encode`, with the two forms as :func:`decode` will give them back (computed once)."""
    if storage not in MAP_STORAGES:
        raise ValueError(f"map storage must be one of {MAP_STORAGES}, got {storage!r}")
    exact = np.asarray(clipped, np.float32)
    packed = {"codec": "float32", "map": _pack(exact, np.float32),
              "unclipped": None if unclipped is None else _pack(unclipped, np.float32)}
    if storage == "exact" or stored_bytes(packed) <= (MAP_BUDGET if budget is None else budget):
        return packed, (exact, exact if unclipped is None else np.asarray(unclipped, np.float32))
    if unclipped is None:
        packed = {"codec": "float16", "map": _pack(clipped, np.float16), "unclipped": None}
        back = _unpack(packed["map"])
        return packed, (back, back)
    packed = {"codec": "float16", "map": None, "unclipped": _pack(unclipped, np.float16), "percentile": percentile}
    back = _unpack(packed["unclipped"])
    derived = _derived(back, percentile)
    # A map whose clip cannot be derived again within MAX_ERROR keeps its clipped form too: the clip
    # stretches the rounding where the span above the minimum is small (values between 0.9 and 1), and
    # the half-precision values may tie at the clip where the float32 ones did not (a flat derived map).
    finite = np.isfinite(clipped)
    if finite.any() and not (np.array_equal(finite, np.isfinite(derived))
                             and float(np.max(np.abs(derived[finite] - clipped[finite]))) <= MAX_ERROR):
        packed["map"] = _pack(clipped, np.float16)
        derived = _unpack(packed["map"])
    return packed, (derived, back)


def decode_form(packed: dict, form: int) -> np.ndarray:
    """One form of a stored map (0: clipped, 1: unclipped), without deriving the other."""
    if form == 1 and packed.get("unclipped") is not None:
        return _unpack(packed["unclipped"])
    return decode(packed)[form]


def decode(packed: dict) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`encode` made → (clipped, unclipped) float32 maps (the same array twice for a min–max map)."""
    unclipped = None if packed.get("unclipped") is None else _unpack(packed["unclipped"])
    if packed.get("map") is not None:
        clipped = _unpack(packed["map"])
    else:
        clipped = _derived(unclipped, packed["percentile"])
    return clipped, clipped if unclipped is None else unclipped


def round_trip(clipped: np.ndarray, unclipped: np.ndarray | None, *, storage: str = DEFAULT_MAP_STORAGE,
               percentile: float | None = None, budget: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two forms as the store gives them back: what every evaluation scores."""
    return pack(clipped, unclipped, storage=storage, percentile=percentile, budget=budget)[1]


def storage_note(storage: str, kept: dict | None = None) -> str:
    """How a run's maps were kept, in words (provenance lines of the app and the reports): said as a
    departure where maps were scored in half precision."""
    if storage == "exact":
        return "every map kept exactly (--map-storage exact)"
    if kept and kept.get("half_precision"):
        return (f"{kept['half_precision']:,} of {kept['maps']:,} maps kept in half precision (compact storage, a "
                f"departure: --map-storage exact keeps every map bit for bit)")
    if kept:
        return "every map kept exactly (compact storage: each within its 120 KB budget)"
    return "compact storage (exact up to 120 KB a map, half precision beyond)"


def planned_bytes(size: int, storage: str = DEFAULT_MAP_STORAGE) -> int:
    """A bound on what one stored map of ``size``² costs (both forms, with the entry's other fields):
    float32 forms of a noise-like map take ≈3.2 B a pixel each; compact keeps at most ``MAP_BUDGET`` exactly,
    and the half-precision planes of a larger one hardly compress (≈1.5 B a pixel)."""
    exact = int(size * size * 6.6)
    if storage == "compact":
        return min(exact, max(MAP_BUDGET, int(size * size * 1.6))) + 2048
    return exact + 2048


def stored_bytes(packed: dict) -> int:
    """Compressed bytes of one stored map (both forms when both are kept)."""
    return sum(len(packed[k]["data"]) for k in ("map", "unclipped") if packed.get(k) is not None)
