"""The field's newer per-image metrics beside AUPRC and SSIM, batched over (N, H, W) numpy arrays.

Localization (a map against a binary ground-truth mask):

* :func:`pointing_game` — 1 when the maximum of the map lies inside the mask (Zhang et al. 2016; Quantus
  ``PointingGame``). Tied maxima: a hit when any of them is inside (``ties="any"``, Quantus's rule, the
  evaluation's on the unclipped map, where ties are rare), or the share of them inside the mask
  (``ties="share"``, the expected hit of a random tie break: the evaluation's rule on the percentile-clipped
  map, where ~1 % of the pixels tie at 1.0 and "any" would reward scattered maps).
* :func:`energy_pointing_game` — the share of the map's mass inside the mask (Wang et al. 2020's
  energy-based pointing game; Quantus ``RelevanceMassAccuracy``).
* :func:`iou_at` — IoU of the map thresholded at ``map > t`` with the mask (CheXlocalize's binarization of
  min–max normalized maps, strict as its ``cam_to_segmentation``); :func:`tune_threshold` picks t on a
  validation split as CheXlocalize does, over its grid ``np.arange(0.2, 0.8, 0.1)`` = 0.2 … 0.8 (the float
  step makes ``arange`` include 0.8: seven thresholds).

Similarity of two maps (randomization tests):

* :func:`spearman` — Spearman rank correlation with average ranks for ties (scipy ``spearmanr``).
* :func:`hog_similarity` — Pearson correlation of the maps' HOG descriptors (Adebayo et al. 2018, with
  scikit-image's ``hog``).

Complexity: :func:`discrete_entropy` — entropy of a 100-bin histogram (Quantus ``discrete_entropy``), for
eMPRT (Hedström et al. 2023): (H(randomized) − H(original)) / H(original).
"""
from __future__ import annotations

import numpy as np
from scipy import stats as sps

from ..errors import MetricError

# CheXlocalize's threshold grid (tune_heatmap_threshold.py: np.arange(0.2, 0.8, 0.1) on normalized maps, which
# floating point makes 0.2, 0.3, …, 0.8: seven values)
MIOU_THRESHOLDS = tuple(round(t, 1) for t in np.arange(0.2, 0.8, 0.1))
HOG = dict(orientations=8, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
ENTROPY_BINS = 100


def _pair(maps, masks, names=("map", "mask")) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(maps, dtype=np.float64), np.asarray(masks)
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.shape != b.shape or a.ndim != 3:
        raise MetricError(f"{names[0]}s and {names[1]}s must be (N, H, W) of one shape, got {a.shape} and {b.shape}")
    if not np.isfinite(a).all():
        raise MetricError(f"the {names[0]}s contain NaN or infinite values (a flagged map must be excluded)")
    return a.reshape(len(a), -1), b.reshape(len(b), -1)


def _masks(masks: np.ndarray) -> np.ndarray:
    if not np.isin(masks, (0, 1)).all():
        raise MetricError("the masks must be binary (0/1 or bool)")
    m = masks.astype(bool)
    if (m.sum(1) == 0).any():
        raise MetricError(f"mask {int(np.nonzero(m.sum(1) == 0)[0][0])} has no positive pixel")
    return m


def pointing_game(maps, masks, ties: str = "any") -> np.ndarray:
    """(N,) hit of the map's maximum in the mask: 1.0 or 0.0 for a unique maximum; with tied maxima their
    share inside the mask (``ties="share"``) or 1.0 when any is inside (``ties="any"``, Quantus)."""
    a, m = _pair(maps, masks)
    m = _masks(m)
    top = a == a.max(1, keepdims=True)
    if ties == "any":
        return (m & top).any(1).astype(np.float64)
    if ties != "share":
        raise MetricError(f"ties must be 'share' or 'any', got {ties!r}")
    return (m & top).sum(1) / top.sum(1)


def energy_pointing_game(maps, masks) -> np.ndarray:
    """(N,) Σ map · mask / Σ map (maps are non-negative; NaN where a map sums to 0)."""
    a, m = _pair(maps, masks)
    m = _masks(m)
    if (a < 0).any():
        raise MetricError("the energy pointing game needs non-negative maps (normalized saliency maps are)")
    total = a.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (a * m).sum(1) / total, np.nan)


def iou_at(maps, masks, threshold: float) -> np.ndarray:
    """(N,) IoU of ``map > threshold`` (after min–max normalization per map) with the mask."""
    a, m = _pair(maps, masks)
    m = _masks(m)
    low, high = a.min(1, keepdims=True), a.max(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(high > low, (a - low) / (high - low), 0.0)
    binary = a > threshold
    return (binary & m).sum(1) / (binary | m).sum(1)


def tune_threshold(maps, masks, thresholds=MIOU_THRESHOLDS) -> tuple[float, dict]:
    """The threshold of ``thresholds`` with the highest mean IoU on (validation) maps, and every mean."""
    means = {float(t): float(np.nanmean(iou_at(maps, masks, t))) for t in thresholds}
    return max(means, key=lambda t: (means[t], -t)), means


def spearman(a, b) -> np.ndarray:
    """(N,) Spearman rank correlation of each pair of maps (average ranks for ties; NaN for a constant map)."""
    x, y = _pair(a, b, ("first map", "second map"))
    rx = sps.rankdata(x, axis=1)
    ry = sps.rankdata(y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))


def hog_features(maps) -> np.ndarray:
    """(N, F) HOG descriptors of 2-D maps: scikit-image's ``hog`` (8 orientations, 8×8 cells, 2×2 blocks,
    L2-Hys), batched over the maps in numpy.

    The steps are scikit-image's own (``feature/_hog.py`` and its Cython cell histogram): central
    differences with zero borders, magnitude ``hypot``, orientation ``rad2deg(arctan2) % 180`` binned by
    ``start <= o < end`` (an orientation rounding to 180.0 falls in no bin, as there), cells summed in C
    ``float`` in row-major order and averaged over their 64 pixels in ``float``, as the Cython does, blocks
    normalized L2-Hys with eps 1e-5. Equal to ``hog`` map by map (tested); batched, several times
    faster than the per-map loop, whose block normalization runs in Python.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    chunk = max(1, 2 ** 18 // max(1, maps.shape[1] * maps.shape[2]))  # a few MB per array: cache-sized
    if len(maps) > chunk:
        return np.concatenate([hog_features(maps[i:i + chunk]) for i in range(0, len(maps), chunk)])
    n, height, width = maps.shape
    n_orient = HOG["orientations"]
    c_row, c_col = HOG["pixels_per_cell"]
    b_row, b_col = HOG["cells_per_block"]
    cells_r, cells_c = height // c_row, width // c_col
    blocks_r, blocks_c = cells_r - b_row + 1, cells_c - b_col + 1
    if blocks_r <= 0 or blocks_c <= 0:
        raise MetricError(f"HOG needs maps of at least {c_row * b_row}×{c_col * b_col} pixels, got {height}×{width}")
    g_row = np.zeros_like(maps)
    g_col = np.zeros_like(maps)
    g_row[:, 1:-1, :] = maps[:, 2:, :] - maps[:, :-2, :]
    g_col[:, :, 1:-1] = maps[:, :, 2:] - maps[:, :, :-2]
    crop = (slice(None), slice(0, cells_r * c_row), slice(0, cells_c * c_col))
    magnitude = np.hypot(g_col, g_row)[crop]
    orientation = (np.rad2deg(np.arctan2(g_row, g_col)) % 180)[crop]
    per_bin = 180.0 / n_orient
    # each pixel's bin by scikit-image's comparisons start <= o < end (the division's rounding corrected
    # at the edges); n_orient, no bin, for an orientation that rounds to 180.0
    bins = np.floor(orientation / per_bin)
    bins -= orientation < per_bin * bins
    bins += orientation >= per_bin * (bins + 1)
    bins = np.minimum(bins, n_orient).astype(np.int64)
    # the Cython sums a cell in C float over its pixels in row-major order, then divides in float: each
    # pixel offset of the cells in turn, added to its bin (one pixel per cell per step)
    magnitude = magnitude.reshape(n, cells_r, c_row, cells_c, c_col)
    bins = bins.reshape(n, cells_r, c_row, cells_c, c_col)
    base = np.arange(n * cells_r * cells_c).reshape(n, cells_r, cells_c) * (n_orient + 1)
    total = np.zeros(n * cells_r * cells_c * (n_orient + 1), dtype=np.float32)
    for dy in range(c_row):
        for dx in range(c_col):
            at = base + bins[:, :, dy, :, dx]
            total[at] = total[at] + magnitude[:, :, dy, :, dx]  # float32 + float64, stored as float32
    total = total.reshape(n, cells_r, cells_c, n_orient + 1)[..., :n_orient]
    hist = (total / np.float32(c_row * c_col)).astype(np.float64)
    blocks = np.lib.stride_tricks.sliding_window_view(hist, (b_row, b_col), axis=(1, 2))
    blocks = blocks.transpose(0, 1, 2, 4, 5, 3)  # (N, blocks_r, blocks_c, b_row, b_col, orientations)
    eps = 1e-5
    out = blocks / np.sqrt((blocks ** 2).sum(axis=(3, 4, 5), keepdims=True) + eps ** 2)
    out = np.minimum(out, 0.2)
    out = out / np.sqrt((out ** 2).sum(axis=(3, 4, 5), keepdims=True) + eps ** 2)
    return out.reshape(n, -1)


def hog_similarity(a, b) -> np.ndarray:
    """(N,) Pearson correlation of the HOG descriptors of each pair of maps (NaN where one is constant)."""
    x, y = _pair(a, b, ("first map", "second map"))
    shape = np.asarray(a).shape[-2:]
    fx, fy = hog_features(x.reshape(-1, *shape)), hog_features(y.reshape(-1, *shape))
    fx -= fx.mean(1, keepdims=True)
    fy -= fy.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (fx * fy).sum(1) / np.sqrt((fx * fx).sum(1) * (fy * fy).sum(1))


def discrete_entropy(maps, n_bins: int = ENTROPY_BINS) -> np.ndarray:
    """(N,) entropy (nats) of each map's ``n_bins``-bin histogram over its own range."""
    a = np.asarray(maps, dtype=np.float64)
    a = a.reshape(len(a), -1) if a.ndim == 3 else a.reshape(1, -1)
    out = np.empty(len(a))
    for i, row in enumerate(a):
        counts, _ = np.histogram(row, bins=n_bins)
        out[i] = sps.entropy(counts)
    return out


def emprt(original, randomized, n_bins: int = ENTROPY_BINS) -> np.ndarray:
    """(N,) eMPRT's relative rise of complexity (H(randomized) − H(original)) / H(original)."""
    h0, h1 = discrete_entropy(original, n_bins), discrete_entropy(randomized, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(h0 > 0, (h1 - h0) / h0, np.nan)
