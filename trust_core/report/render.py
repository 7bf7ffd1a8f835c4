"""Pictures people would rather look at than read: overlays, contours, grids (numpy/matplotlib, no UI)."""
from __future__ import annotations

import io

import cv2
import numpy as np

from ..evaluate.verdicts import VERDICT_CELLS

COLORMAPS = ("inferno", "jet", "viridis", "magma", "hot", "gray")
# A verdict's chip, wherever one is shown (scorecard, reports): (background, text), as hex colours
VERDICT_COLOURS = VERDICT_CELLS  # (background, text) of a verdict's cell


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[k:k + 2], 16) for k in (1, 3, 5))


def colorize(saliency: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """A [0, 1] map → RGB uint8 (NaN → mid gray)."""
    from matplotlib import colormaps

    values = np.nan_to_num(saliency, nan=0.0).clip(0, 1)
    rgb = (colormaps[cmap](values)[..., :3] * 255).astype(np.uint8)
    rgb[np.isnan(saliency)] = 128
    return rgb


def overlay(image01: np.ndarray, saliency: np.ndarray | None, *, alpha: float = 0.5, cmap: str = "inferno",
            threshold: float | None = None, top_percent: float | None = None, mask: np.ndarray | None = None,
            boxes=None, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """The X-ray (grayscale [0, 1]) with a saliency map blended over it and the ground truth outlined, at
    ``size`` (a side, or ``(height, width)``: a film's own shape; default the map's).

    ``threshold`` hides map values below it; ``top_percent`` keeps only the top k % of pixels. The
    ground truth is drawn as a cyan contour (mask) or, when ``boxes`` are given, as one rectangle per box
    (in the mask's pixel frame), so that overlapping boxes stay apart.
    """
    size = size or (saliency.shape[0] if saliency is not None else image01.shape[0])
    height, width = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    base = cv2.resize(image01.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    rgb = np.repeat((base.clip(0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    if saliency is not None:
        sal = cv2.resize(saliency.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        visible = np.isfinite(sal)
        if threshold is not None:
            visible &= sal >= threshold
        if top_percent is not None and np.isfinite(sal).any():
            visible &= sal >= np.nanpercentile(sal, 100 - top_percent)
        colored = colorize(sal, cmap)
        weight = (alpha * visible)[..., None]
        rgb = (rgb * (1 - weight) + colored * weight).astype(np.uint8)
    frame = mask.shape if mask is not None else (height, width)
    sx, sy = width / frame[1], height / frame[0]  # the mask's (and boxes') pixels → this picture's
    thickness = max(1, min(height, width) // 256)
    if mask is not None and mask.any() and not boxes:
        m = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, (0, 255, 255), thickness)
    for box in boxes or ():
        x0, y0 = int(box.x * sx), int(box.y * sy)
        x1, y1 = int((box.x + box.width) * sx), int((box.y + box.height) * sy)
        cv2.rectangle(rgb, (x0, y0), (x1, y1), (0, 255, 0), thickness)
    return rgb


def to_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """An overlay as JPEG: a report's film-resolution panels at a tenth of their PNG size (the film's noise
    does not compress losslessly); for reading, not for measuring."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def to_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()
