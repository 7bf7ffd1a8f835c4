"""Guided Grad-CAM (Selvaraju et al. 2017): the normalized Guided Backprop map × the normalized Grad-CAM
map, then min–max only (the authors' ``create_maps_rsna.py``: no second percentile clip)."""
import torch

from .base import Method
from ..postprocess import minmax_maps


def combine(run, maps, flags):
    product = maps["gbp"] * maps["gradcam"]  # NaN propagates from either factor
    result, reasons = minmax_maps(torch.nan_to_num(product, nan=0.0))
    for i in range(run.n):
        upstream = flags["gbp"][i] or flags["gradcam"][i]
        if upstream:
            reasons[i] = f"from its factors: {upstream}"
            result[i] = float("nan")
    return product, result, reasons


METHOD = Method(
    "guided_gradcam", "Guided Grad-CAM", "Selvaraju et al., ICCV 2017",
    "normalized Guided Backprop map × normalized Grad-CAM map, then min–max only",
    ("gradcam_layer", "gradcam_interpolation"), needs_layer=True, passes="0 (reuses gbp and gradcam)",
    depends_on=("gbp", "gradcam"), postprocess="minmax", cost=lambda p: 0, combine=combine)
