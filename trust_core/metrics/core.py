"""Trust metrics as pure functions (protocol.md section 3), single and batched, numpy or torch.

* :func:`auprc` — area under the precision–recall curve of a saliency map against a binary mask, over
  every distinct map value as a threshold, by the trapezoid rule: sklearn's
  ``auc(*precision_recall_curve(mask, map)[1::-1])``. It is **not** average precision
  (:func:`average_precision` is offered separately, labelled).
* :func:`ssim` — scikit-image's ``structural_similarity`` with the 2020-era defaults the paper used:
  7×7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance, mean over the valid region, and
  ``data_range = 2`` (``1`` is an option).

The batched versions (:func:`auprc_batch`, :func:`ssim_batch`) run on torch tensors (GPU when given
one) and equal the per-image references within 1e-6.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MetricError

SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
PAPER_DATA_RANGE = 2.0


def _as_batch(values, name: str, *, dtype=torch.float64) -> torch.Tensor:
    tensor = values if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))
    if dtype is not None:
        tensor = tensor.to(dtype)
    elif not tensor.is_floating_point():
        tensor = tensor.to(torch.float32 if tensor.dtype != torch.bool else torch.bool)
    if tensor.dim() == 2:
        tensor = tensor[None]
    if tensor.dim() != 3:
        raise MetricError(f"{name} must be 2-D (H, W) or a batch (N, H, W), got shape {tuple(tensor.shape)}")
    return tensor


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise MetricError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and "
                          f"{tuple(b.shape)}")
    for tensor, name in zip((a, b), names):
        if not torch.isfinite(tensor).all():
            raise MetricError(f"{name} contains NaN or infinite values (a flagged map must be excluded, "
                              f"not scored)")


def _pr_points(maps: torch.Tensor, masks: torch.Tensor):
    """Per-position recall and precision of the PR curve (constant within tied thresholds)."""
    n, p = maps.shape[0], maps[0].numel()
    scores = maps.reshape(n, p)
    labels = masks.reshape(n, p)
    positives = labels.sum(1, dtype=torch.float64)
    if bool((positives == 0).any()):
        bad = int(torch.nonzero(positives == 0)[0])
        raise MetricError(f"mask {bad} has no positive pixel: AUPRC is undefined for an empty mask")
    # Order inside a run of tied scores is irrelevant (only each run's last position is used), so an
    # unstable sort of the original-precision scores is enough.
    sorted_scores, order = torch.sort(scores, dim=1, descending=True)
    tp = labels.gather(1, order).to(torch.float64).cumsum(1)
    # Last position of each run of equal scores: where the next score differs, or the end.
    is_last = torch.ones_like(sorted_scores, dtype=torch.bool)
    is_last[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    index = torch.arange(p, device=maps.device).expand(n, p)
    sentinel = torch.full_like(index, p - 1)
    last = torch.where(is_last, index, sentinel).flip(1).cummin(1).values.flip(1)
    tp_at = tp.gather(1, last)
    recall = tp_at / positives[:, None]
    precision = tp_at / (last + 1).to(tp_at.dtype)
    return recall, precision


def _pr_inputs(maps, masks) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated (N, H, W) maps and binary masks for the precision-recall metrics."""
    maps_t = _as_batch(maps, "saliency", dtype=None)
    masks_t = _as_batch(masks, "mask", dtype=None).to(maps_t.device)
    _check_pair(maps_t, masks_t, ("saliency", "mask"))
    if not bool(((masks_t == 0) | (masks_t == 1)).all()):
        raise MetricError("the mask must be binary (0/1 or bool)")
    return maps_t, masks_t


def _per_image(reduce, t: torch.Tensor) -> torch.Tensor:
    """``reduce(t)`` over each image of a batch ``t`` (N, …), the same bits whatever else the batch holds: torch
    splits the reduction of a lone row over its threads once it is large (≥ 32,768 values, as a 224² map),
    which sums in another order than the per-row reduction of a batch. A lone image is reduced as a batch of
    two, so a map scores alike alone (a unit's last image) and among others."""
    if t.shape[0] == 1:
        return reduce(torch.cat([t, t]))[:1]
    return reduce(t)


def auprc_batch(maps, masks) -> torch.Tensor:
    """AUPRC of each map (N, H, W) against its binary mask (N, H, W); float64 tensor (N,)."""
    recall, precision = _pr_points(*_pr_inputs(maps, masks))
    ones = torch.ones_like(recall[:, :1])
    r = torch.cat([torch.zeros_like(ones), recall], 1)  # the curve starts at (recall 0, precision 1)
    pr = torch.cat([ones, precision], 1)
    return _per_image(lambda t: t.sum(1), (r[:, 1:] - r[:, :-1]) * (pr[:, 1:] + pr[:, :-1]) / 2)


def average_precision_batch(maps, masks) -> torch.Tensor:
    """Average precision Σ (R_k − R_{k−1}) P_k (sklearn's ``average_precision_score``); not AUPRC."""
    recall, precision = _pr_points(*_pr_inputs(maps, masks))
    r = torch.cat([torch.zeros_like(recall[:, :1]), recall], 1)
    return _per_image(lambda t: t.sum(1), (r[:, 1:] - r[:, :-1]) * precision)


def auprc(saliency, mask) -> float:
    """AUPRC of one saliency map (H, W) against one binary mask (H, W).

    Raises
    ------
    MetricError
        Shapes differ, the mask is empty or not binary, or the map holds NaN/inf.
    """
    return float(auprc_batch(saliency, mask)[0])


def average_precision(saliency, mask) -> float:
    return float(average_precision_batch(saliency, mask)[0])


def _box_mean(t: torch.Tensor, k: int = SSIM_WINDOW) -> torch.Tensor:
    """Mean over every k×k window fully inside (..., H, W): separable running sums (float64, O(H·W))."""
    c = F.pad(t, (1, 0)).cumsum(-1)
    t = c[..., k:] - c[..., :-k]
    c = F.pad(t, (0, 0, 1, 0)).cumsum(-2)
    return (c[..., k:, :] - c[..., :-k, :]) / (k * k)


SSIM_CHUNK = 8  # images per pass on CPUs: five float64 planes each stay in cache-friendly sizes
SSIM_CHUNK_CUDA = 128  # GPUs want wide passes (128 × 5 float64 planes of 320² = 0.5 GB)


def ssim_batch(a, b, *, data_range: float = PAPER_DATA_RANGE) -> torch.Tensor:
    """Mean SSIM of each pair of 2-D maps (N, H, W), scikit-image defaults; float64 tensor (N,)."""
    x, y = _as_batch(a, "first map", dtype=None), _as_batch(b, "second map", dtype=None)  # float64 per chunk
    y = y.to(x.device)
    _check_pair(x, y, ("first map", "second map"))
    if not data_range > 0:
        raise MetricError(f"data_range must be positive, got {data_range}")
    if min(x.shape[1:]) < SSIM_WINDOW:
        raise MetricError(f"maps must be at least {SSIM_WINDOW}×{SSIM_WINDOW} for SSIM, got {tuple(x.shape[1:])}")
    n_window = SSIM_WINDOW ** 2
    cov_norm = n_window / (n_window - 1)  # sample covariance
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    out = []
    chunk = SSIM_CHUNK_CUDA if x.device.type == "cuda" else SSIM_CHUNK
    for start in range(0, x.shape[0], chunk):
        xs = x[start:start + chunk].to(torch.float64)
        ys = y[start:start + chunk].to(torch.float64)
        # One pass of the (valid-region) uniform filter over the five planes at once.
        ux, uy, uxx, uyy, uxy = _box_mean(torch.stack([xs, ys, xs * xs, ys * ys, xs * ys], 1)).unbind(1)
        vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(_per_image(lambda t: t.mean(dim=(1, 2)), s))
    return torch.cat(out)


def ssim(a, b, *, data_range: float = PAPER_DATA_RANGE) -> float:
    """SSIM of two 2-D maps; ``data_range=2`` reproduces the paper (scikit-image < 0.19 on floats)."""
    return float(ssim_batch(a, b, data_range=data_range)[0])
