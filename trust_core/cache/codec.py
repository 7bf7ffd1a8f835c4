"""How a saliency map is kept in the store: exactly while that is small, in half precision beyond.

A map has two forms (``postprocess``): the *unclipped* map ``|a| / max |a|`` and the *clipped* map the
paper scores, which is the unclipped map put through the percentile clip and min–max
(:func:`~trust_core.saliency.postprocess.normalize_maps` is invariant to the positive rescaling between
them). Two storages (``--map-storage``):

``compact`` (the default)
    A map whose exact form (both forms in float32, byte planes deflated) takes at most ``MAP_BUDGET`` (120 KB)
    is kept exactly: every map up to about 128² (the demo's size), and the piecewise-constant maps (XRAI) at
    any size. A map that upsamples a coarse one by TF1's bilinear rule (Grad-CAM's and Grad-CAM++'s in the
    paper's ``gradcam_interpolation``) is kept as that coarse map, which predicts it bit for bit
    (:func:`tf1_upsample`, :func:`_predicted`): about a KB at 320², exact. Where both forms exceed the
    budget, the unclipped form alone may still fit: it is kept in float32 with
    the words by which the clip estimated from it (:func:`_clip_estimate`: an ulp here and there) misses the
    computed clipped form: exact too, bit for bit (smooth maps at 320²). A larger map keeps one
    array: its unclipped form as IEEE half floats (round to nearest: a relative error ≤ 2⁻¹¹ ≈ 4.9e-4, the
    smallest values as subnormals), the two bytes in planes (the exponent plane compresses well), deflated;
    the clipped form is derived on read by the same ``normalize_maps`` (a min–max-only map, Guided Grad-CAM,
    is its own unclipped form). About 95–155 KB for a noise-like 320² gradient map (each word predicted from
    its neighbour, below), against 800 KB for both forms in float32; Grad-CAM's (≈1 KB) and XRAI's (≈35–40 KB)
    320² maps fit exactly. ≈100–112 KB a map on average over the eight methods of a trained model: ``trust bench
    scale`` measures the size; ``tests/evaluate/test_scale.py`` and ``bench/compact_effect.py`` the effect on
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


# Each array is kept as words (the float's bits as an unsigned integer) minus a prediction from their
# neighbours: none, the word to the left or above, or the line through the two words to the left or above
# (second differences: a bilinear upsampling, Grad-CAM's, is nearly linear between its knots; within one
# binade a float's bits are linear in its value), the difference zigzag-coded so that small
# steps either way are small numbers; the bytes in planes (all first bytes of the words, then all second…),
# each plane deflated on its own or all in one stream, whichever is shorter (:func:`_layout`). The
# prediction is the one whose residuals, all planes in one stream, deflate a sample of an eighth of the rows
# shortest; the layout, the one that deflates that prediction's sample shortest (choosing the prediction by one
# stream each, not by every layout of each, packs a map in 0.7× the time at 128² and 320², at most 0.2 % more
# bytes on the maps measured, some up to 2 % fewer). Smooth maps (Grad-CAM, SmoothGrad) shrink by a third or
# more; a noise-like 320² gradient map by ≈7 %. Lossless either way: the words come back bit for bit. (Entries
# written before, with one deflated stream of planes under "data", are still read.)
_FILTERS = ("none", "left", "up", "left2", "up2")
_AXIS = {"left": -1, "up": -2, "left2": -1, "up2": -2}
_ORDER = {"left2": 2, "up2": 2}  # linear extrapolation from the two words before: bilinear upsampling (Grad-CAM)
_SAMPLE = 8  # an eighth of the rows of the residuals chooses the prediction (:func:`_sample_rows`)
_RUN = 4
_UINT = {2: np.uint16, 4: np.uint32}
_SIGNED = {2: (np.int16, np.int32, 15), 4: (np.int32, np.int64, 31)}


def _zigzag(residual: np.ndarray) -> np.ndarray:
    signed, wide, top = _SIGNED[residual.dtype.itemsize]
    r = residual.view(signed).astype(wide)
    return ((r << 1) ^ (r >> top)).astype(residual.dtype)


def _unzigzag(coded: np.ndarray) -> np.ndarray:
    one = coded.dtype.type(1)
    return (coded >> one) ^ (np.zeros_like(coded) - (coded & one))


def _residual(words: np.ndarray, how: str) -> np.ndarray:
    if how == "none":
        return words
    axis = _AXIS[how]
    first = np.zeros_like(np.take(words, [0], axis=axis))
    for _ in range(_ORDER.get(how, 1)):  # unsigned: wraps, exactly undone by cumsum
        words = np.diff(words, axis=axis, prepend=first)
    return _zigzag(words)


def _restore(residual: np.ndarray, how: str) -> np.ndarray:
    if how == "none":
        return residual
    words = _unzigzag(residual)
    for _ in range(_ORDER.get(how, 1)):
        words = np.cumsum(words, axis=_AXIS[how], dtype=residual.dtype)
    return words


def _plane_rows(words: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(words).reshape(-1)
    return flat.view(np.uint8).reshape(-1, flat.dtype.itemsize).T


_STRATEGIES = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED)


def _deflate(data: bytes, strategy: int) -> bytes:
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, 15, 9, strategy)
    return compressor.compress(data) + compressor.flush()


def _layout(residual: np.ndarray) -> tuple[tuple, list[bytes]]:
    """The shortest deflation of one array of residuals, and how it was made: each byte plane on its own, by
    zlib's default or filtered strategy (filtered wins on planes of noise-like residuals), or all planes in
    one stream (fewer headers and code tables: small maps, XRAI's piecewise-constant ones)."""
    planes = _plane_rows(residual)
    each, strategies = [], []
    for plane in planes:
        data = plane.tobytes()
        strategy, deflated = min(((s, _deflate(data, s)) for s in _STRATEGIES), key=lambda sd: len(sd[1]))
        each.append(deflated)
        strategies.append(strategy)
    joined = _deflate(planes.tobytes(), zlib.Z_DEFAULT_STRATEGY)
    if len(joined) <= sum(map(len, each)):
        return ("joined",), [joined]
    return ("planes", tuple(strategies)), each


def _deflate_as(residual: np.ndarray, layout: tuple) -> list[bytes]:
    planes = _plane_rows(residual)
    if layout[0] == "joined":
        return [_deflate(planes.tobytes(), zlib.Z_DEFAULT_STRATEGY)]
    return [_deflate(plane.tobytes(), strategy) for plane, strategy in zip(planes, layout[1])]


def _sample_rows(n: int) -> np.ndarray:
    """The rows that choose the prediction: runs of ``_RUN`` consecutive rows, one run in every
    ``_RUN * _SAMPLE`` rows (an eighth of the map). Runs, not every eighth row: deflate finds a row repeated
    from the row above (XRAI's regions) only where the sample keeps neighbouring rows; every eighth row alone
    took that for noise and chose the upper prediction, a quarter longer than none on XRAI's maps."""
    return np.array([i for start in range(0, n, _RUN * _SAMPLE) for i in range(start, min(start + _RUN, n))])


def _pack(array: np.ndarray, dtype, limit: int | None = None) -> dict | None:
    """One array as stored; None where ``limit`` (bytes) is given and a sample of the rows of a large array
    already shows that it will not fit (with a margin: a sample that is not sure deflates the whole)."""
    array = np.ascontiguousarray(array, dtype=dtype)
    words = array.view(_UINT[array.dtype.itemsize])
    filters = [f for f in _FILTERS if f == "none" or words.ndim >= -_AXIS[f] and words.shape[_AXIS[f]] > 1]
    size = lambda layout_planes: sum(map(len, layout_planes[1]))  # noqa: E731
    if words.ndim >= 2 and words.shape[-2] >= 4 * _SAMPLE:  # choose on a sample of rows, deflate the choice
        rows = _sample_rows(words.shape[-2])
        residuals = {f: _residual(words, f) for f in filters}
        how = min(filters, key=lambda f: len(_deflate_as(residuals[f][..., rows, :], ("joined",))[0]))
        trial = _layout(residuals[how][..., rows, :])
        scale = words.shape[-2] / len(rows)
        if limit is not None and words.size >= 2**16 and size(trial) * scale > 1.25 * limit:
            return None
        planes = _deflate_as(residuals[how], trial[0])
        if words.size < 2**16 and how != "none":  # a sample of few rows may mislead: a small map predicted
            plain = _deflate_as(words, ("joined",))  # keeps its plain deflation (one stream) where shorter
            if len(plain[0]) < sum(map(len, planes)):
                how, planes = "none", plain
    else:  # small: try each on the whole
        how, (_layout_used, planes) = min(((f, _layout(_residual(words, f))) for f in filters),
                                         key=lambda fl: size(fl[1]))
    return {"dtype": array.dtype.str, "shape": list(array.shape), "filter": how, "planes": planes}


def _unpack(packed: dict) -> np.ndarray:
    dtype, shape = np.dtype(packed["dtype"]), tuple(packed["shape"])
    if "planes" not in packed:  # the earlier form: one deflated stream of the planes, no prediction
        size = int(np.prod(shape))
        planes = np.frombuffer(zlib.decompress(packed["data"]), np.uint8).reshape(dtype.itemsize, size)
        return np.ascontiguousarray(planes.T).view(dtype).reshape(shape).astype(np.float32)
    return _unpack_words(packed).view(dtype).astype(np.float32)


def _unpack_words(packed: dict) -> np.ndarray:
    """The words of one array as :func:`_pack` kept them (unsigned integers of the array's width)."""
    dtype, shape = np.dtype(packed["dtype"]), tuple(packed["shape"])
    if len(packed["planes"]) == 1:  # all planes in one stream
        planes = np.frombuffer(zlib.decompress(packed["planes"][0]), np.uint8).reshape(dtype.itemsize, -1)
    else:
        planes = np.stack([np.frombuffer(zlib.decompress(p), np.uint8) for p in packed["planes"]])
    words = np.ascontiguousarray(planes.T).view(dtype.str.replace("f", "u")).reshape(shape)
    return _restore(words, packed["filter"])


def _packed_bytes(packed_array: dict) -> int:
    if "planes" in packed_array:
        return sum(len(p) for p in packed_array["planes"])
    return len(packed_array["data"])


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
         percentile: float | None = None, budget: int | None = None,
         upsampled: tuple[str, np.ndarray] | None = None) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """:func:`encode`, with the two forms as :func:`decode` will give them back (computed once). ``upsampled``:
    (rule, coarse map) of which the raw map is the upsampling (Grad-CAM's), a prediction of the unclipped form
    (:func:`_predicted`)."""
    if storage not in MAP_STORAGES:
        raise ValueError(f"map storage must be one of {MAP_STORAGES}, got {storage!r}")
    exact = np.asarray(clipped, np.float32)
    budget = MAP_BUDGET if budget is None else budget
    predicted = None
    if storage == "compact" and upsampled is not None and unclipped is not None and percentile is not None:
        predicted = _predicted(exact, np.asarray(unclipped, np.float32), upsampled, percentile)
        if predicted is not None and stored_bytes(predicted) <= budget // 8:  # the prediction held: by far the
            return predicted, (exact, np.asarray(unclipped, np.float32))  # smallest exact form
    limit = None if storage == "exact" else budget  # a form a sample shows beyond it is not deflated whole
    first = _pack(exact, np.float32, limit)
    second = None if unclipped is None or first is None else _pack(
        unclipped, np.float32, None if limit is None else max(limit - _packed_bytes(first), 0))
    packed = {"codec": "float32", "map": first, "unclipped": second}
    if first is not None and (unclipped is None or second is not None) and (
            storage == "exact" or stored_bytes(packed) <= budget):
        if predicted is not None and stored_bytes(predicted) < stored_bytes(packed):
            packed = predicted
        return packed, (exact, exact if unclipped is None else np.asarray(unclipped, np.float32))
    if predicted is not None and stored_bytes(predicted) <= budget:
        return predicted, (exact, np.asarray(unclipped, np.float32))
    # Still exact: the unclipped form in float32 (packed above unless cut short) and the words by which the
    # clip estimated from it misses the computed one.
    if unclipped is not None and percentile is not None:
        full = np.asarray(unclipped, np.float32)
        whole = second if second is not None else _pack(full, np.float32, budget)
        if whole is not None and _packed_bytes(whole) < budget:
            correction = _correction(exact, _clip_estimate(full, percentile))
            packed = {"codec": "float32", "map": None, "unclipped": whole, "percentile": percentile,
                      "correction": _pack(correction, np.uint32)}
            if stored_bytes(packed) <= budget:
                return packed, (exact, full)
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
    """What :func:`encode` made → (clipped, unclipped) float32 maps (the same array twice for a min–max map).
    :class:`CodecError` where a map kept as its coarse map does not decode to its checksum."""
    unclipped = None if packed.get("unclipped") is None else _unpack(packed["unclipped"])
    base = unclipped  # what the clip is estimated from (correction forms)
    if packed.get("upsampled") is not None:  # exact: the prediction from the coarse map plus what it missed by
        hint = packed["upsampled"]
        base = _UPSAMPLE[hint["rule"]](_unpack(hint["coarse"]), tuple(hint["size"]))
        unclipped = (_unclipped_guess(base).view(np.uint32) + _unpack_words(hint["residual"])).view(np.float32)
    if packed.get("map") is not None:
        clipped = _unpack(packed["map"])
    elif packed.get("correction") is not None:  # exact: the estimate plus the words it missed by
        estimate = _clip_estimate(base, packed["percentile"])
        clipped = (estimate.view(np.uint32) + _unpack_words(packed["correction"])).view(np.float32)
    else:
        clipped = _derived(unclipped, packed["percentile"])
    if packed.get("upsampled") is not None and _checksum(clipped, unclipped) != packed["upsampled"]["crc32"]:
        raise CodecError("its prediction from the coarse map gave other bits here than where it was stored "
                         "(flush-to-zero or another float mode in this process?)")
    return clipped, clipped if unclipped is None else unclipped


def decode_entries(found: dict) -> dict:
    """Stored map entries ``found`` (key → entry with ``"packed"``) decoded, key → (clipped, unclipped); an entry
    that does not decode to the bits it was stored with (its checksum: a reader whose arithmetic differs) is
    dropped from ``found``, with a warning, to be computed again."""
    import warnings

    decoded = {}
    for k in list(found):
        try:
            decoded[k] = decode(found[k]["packed"])
        except CodecError as error:
            what = f"{k[0]!r} for image {k[1]}" if isinstance(k, tuple) and len(k) == 2 else repr(k)
            warnings.warn(f"the stored map of {what} is computed again: {error}", RuntimeWarning, stacklevel=3)
            del found[k]
    return decoded


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
    kept = sum(_packed_bytes(packed[k]) for k in ("map", "unclipped", "correction") if packed.get(k) is not None)
    if packed.get("upsampled") is not None:
        kept += _packed_bytes(packed["upsampled"]["coarse"]) + _packed_bytes(packed["upsampled"]["residual"])
    return kept


def tf1_upsample(coarse: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``engine.tf1_resize_bilinear`` of one (h, w) float32 map in numpy, by the same float32 operations in the
    same order (each an IEEE operation: the same bits on every machine, as torch's, tested against it)."""
    c = np.asarray(coarse, np.float32)
    (h, w), (out_h, out_w) = c.shape, size

    def weights(n_in: int, n_out: int):
        src = np.arange(n_out, dtype=np.float32) * np.float32(n_in / n_out)
        low = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        return low, np.minimum(low + 1, n_in - 1), src - low.astype(np.float32)

    y0, y1, wy = weights(h, out_h)
    x0, x1, wx = weights(w, out_w)
    top, bottom = c[y0, :], c[y1, :]
    rows = top + (bottom - top) * wy[:, None]
    left, right = rows[:, x0], rows[:, x1]
    return left + (right - left) * wx[None, :]


# The upsamplings a stored coarse map predicts its map by: those whose numpy form repeats torch's bits
# (TF1's legacy bilinear rule, the paper's, is plain elementwise arithmetic). Under the other rules
# (torch's interpolation kernels, vectorized differently on different CPUs) a Grad-CAM map is kept as any other.
_UPSAMPLE = {"tf1_legacy": tf1_upsample}
# The form's name (part of the cache keys of the maps that may be kept so: code written before it cannot read
# it, and must not find it) and the rules it applies to.
PREDICTED_FORM = {"name": "coarse-1", "rules": tuple(_UPSAMPLE)}


class CodecError(ValueError):
    """A stored map that does not decode to the bits it was stored with."""


def _checksum(clipped: np.ndarray, unclipped: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(unclipped, np.float32).tobytes(),
                      zlib.crc32(np.ascontiguousarray(clipped, np.float32).tobytes()))


def _unclipped_guess(up: np.ndarray) -> np.ndarray:
    """``postprocess.unclipped_maps`` of a non-negative map (|a| / max |a| in float64, rounded to float32)."""
    a = np.abs(up.astype(np.float64))
    top = a.max()
    return (a / (top if top > 0 else 1.0)).astype(np.float32)


def _predicted(clipped: np.ndarray, unclipped: np.ndarray, upsampled: tuple[str, np.ndarray],
               percentile: float) -> dict | None:
    """The exact form of a map that upsamples a coarse one (Grad-CAM's 10² class activation map → 320²): the coarse
    map, the words by which the unclipped form predicted from it misses the computed one (zeros where the rule
    repeats the computation, as it does on every machine tested) and the clip's correction (as in the other
    correction form), with a checksum of both forms that :func:`decode` checks (the prediction is arithmetic
    done again on read: a reader that flushes subnormals to zero would get other bits, and gets a
    :class:`CodecError` instead). None where the rule has no numpy form or the map is not finite."""
    rule, coarse = upsampled
    coarse = np.asarray(coarse, np.float32)
    if rule not in _UPSAMPLE or coarse.ndim != 2 or coarse.size == 0 or unclipped.ndim != 2 or not (
            np.isfinite(coarse).all() and np.isfinite(unclipped).all() and np.isfinite(clipped).all()):
        return None
    up = _UPSAMPLE[rule](coarse, unclipped.shape)
    residual = unclipped.view(np.uint32) - _unclipped_guess(up).view(np.uint32)
    correction = _correction(clipped, _clip_estimate(up, percentile))  # the clip of the raw map, as computed
    return {"codec": "float32", "map": None, "unclipped": None, "percentile": percentile,
            "upsampled": {"rule": rule, "size": list(unclipped.shape), "coarse": _pack(coarse, np.float32),
                          "residual": _pack(residual, np.uint32), "crc32": _checksum(clipped, unclipped)},
            "correction": _pack(correction, np.uint32)}


def _clip_estimate(unclipped: np.ndarray, percentile: float) -> np.ndarray:
    """The clipped map ``normalize_maps`` makes, estimated from the unclipped form (within a few ulps), by
    IEEE additions, multiplications and divisions in float64 after a sort: the same bits on every machine,
    numpy and torch build, so that the correction stored beside it gives the computed clip back exactly."""
    u = np.asarray(unclipped, np.float64)
    safe = np.where(np.isfinite(u), np.abs(u), 0.0)
    flat = np.sort(safe, axis=None)
    position = (flat.size - 1) * (percentile / 100.0)
    below = int(np.floor(position))
    above = min(below + 1, flat.size - 1)
    vmax = flat[below] + (flat[above] - flat[below]) * (position - below)
    span = vmax - flat[0]
    maps = np.clip((safe - flat[0]) / (span if span > 0 else 1.0), 0.0, 1.0)
    lo, hi = maps.min(), maps.max()
    return ((maps - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def _correction(clipped: np.ndarray, derived: np.ndarray) -> np.ndarray:
    """The words (uint32, wrapping) that turn the derived clipped map into the computed one, bit for bit."""
    return np.ascontiguousarray(clipped, np.float32).view(np.uint32) - derived.view(np.uint32)
