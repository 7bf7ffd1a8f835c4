"""Attributions → 2-D maps in [0, 1], the only thing metrics see (protocol.md section 2).

3-channel attributions: sum of absolute values over channels; 2-D maps (Grad-CAM, XRAI): absolute value.
Then clip at the ``percentile`` (lower bound = minimum), rescale to [0, 1] — PAIR's
``VisualizeImageGrayscale`` — and min–max once more (:func:`normalize_maps`). Guided Grad-CAM's product
of two normalized maps, and XRAI under ``xrai_postprocess='minmax'``, get min–max only
(:func:`minmax_maps`). A map that cannot be normalized (constant, or not finite) becomes NaN with a
reason, never a silent zero.

The criteria that the field's newer libraries score on the attribution itself (Quantus's pointing game,
relevance mass, eMPRT; CheXlocalize's min–max normalized map) read :func:`unclipped_maps`: the same 2-D
reduction (sum of absolute values over channels, or the absolute value of a 2-D map) divided by its
maximum, without the percentile clip — a positive rescaling, which leaves the argmax, the mass ratios, the
min–max normalized map and the histogram over the map's own range as they are on the raw attribution.
"""
from __future__ import annotations

import torch

CONSTANT = "constant map: it cannot be normalized (e.g. a dead Grad-CAM whose weighted activations are all ≤ 0)"
NON_FINITE = "non-finite attribution values (NaN or inf)"


def normalize_maps(attributions: torch.Tensor, percentile: float = 99.0) -> tuple[torch.Tensor, list[str | None]]:
    """(N, C, H, W) or (N, H, W) attributions → ((N, H, W) float32 maps in [0, 1], reasons per map)."""
    a = attributions.float()
    a = a.abs().sum(dim=1) if a.dim() == 4 else a.abs()  # (N, H, W)
    flat = a.reshape(a.shape[0], -1)
    finite = torch.isfinite(flat).all(dim=1)
    safe = torch.where(torch.isfinite(flat), flat, torch.zeros_like(flat))
    # np.percentile's default 'linear' rule; rows in chunks (torch.quantile caps its input at 2^24 values)
    rows = max(1, (1 << 24) // max(1, safe.shape[1]))
    vmax = torch.cat([torch.quantile(safe[i:i + rows].double(), percentile / 100.0, dim=1, keepdim=True)
                      for i in range(0, safe.shape[0], rows)])
    vmin = safe.double().min(dim=1, keepdim=True).values
    span = vmax - vmin
    maps = ((safe.double() - vmin) / torch.where(span > 0, span, torch.ones_like(span))).clamp(0, 1)
    lo, hi = maps.min(dim=1, keepdim=True).values, maps.max(dim=1, keepdim=True).values
    maps = (maps - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    reasons: list[str | None] = []
    for i in range(a.shape[0]):
        if not bool(finite[i]):
            reasons.append(NON_FINITE)
        elif not float(span[i]) > 0 or not float(hi[i] - lo[i]) > 0:
            reasons.append(CONSTANT)
        else:
            reasons.append(None)
    bad = torch.tensor([r is not None for r in reasons], device=maps.device)
    maps[bad] = float("nan")
    return maps.float().reshape(a.shape), reasons


def minmax_maps(maps: torch.Tensor) -> tuple[torch.Tensor, list[str | None]]:
    """(N, H, W) maps → ((N, H, W) float32 maps rescaled to [0, 1] by their own min and max, reasons):
    no absolute value and no percentile clip (the authors' Guided Grad-CAM: ``create_maps_rsna.py``
    min–maxes the product of the normalized Guided Backprop and Grad-CAM maps)."""
    a = maps.double().reshape(maps.shape[0], -1)
    finite = torch.isfinite(a).all(dim=1)
    safe = torch.where(torch.isfinite(a), a, torch.zeros_like(a))
    lo, hi = safe.min(dim=1, keepdim=True).values, safe.max(dim=1, keepdim=True).values
    out = (safe - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    reasons = [NON_FINITE if not bool(finite[i]) else CONSTANT if not float(hi[i] - lo[i]) > 0 else None
               for i in range(a.shape[0])]
    bad = torch.tensor([r is not None for r in reasons], device=out.device)
    out[bad] = float("nan")
    return out.float().reshape(maps.shape), reasons


def unclipped_maps(attributions: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) or (N, H, W) attributions → (N, H, W) float32 maps ``|a| / max |a|`` (channels summed
    first): the 2-D attribution before the percentile clip, in [0, 1] with its maximum at 1. NaN where the
    attribution is not finite or all zero (the caller's flags say why)."""
    a = attributions.double()
    a = a.abs().sum(dim=1) if a.dim() == 4 else a.abs()
    flat = a.reshape(a.shape[0], -1)
    finite = torch.isfinite(flat).all(dim=1, keepdim=True)
    top = torch.where(finite, flat, torch.zeros_like(flat)).max(dim=1, keepdim=True).values
    ok = finite & (top > 0)
    out = torch.where(ok, flat / torch.where(ok, top, torch.ones_like(top)), torch.full_like(flat, float("nan")))
    return out.float().reshape(a.shape)
