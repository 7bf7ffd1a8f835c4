"""Ground truth at the model's input size: how boxes and masks become a binary mask of S×S pixels.

Two rules (the ``mask_rule`` of every dataset, recorded with each result):

``paper`` (default) — what the authors' scripts did (QTIM-Lab/Assessing-Saliency-Maps, 2020):

* **boxes** (RSNA; folder ``boxes.csv``): each corner truncated to an integer pixel, scaled by
  ``size / (native − 1)`` (``create_maps_rsna.py`` ``downsamp_coord2``: ``int(320 * (int(c) / 1023))``)
  and truncated again; the box is filled *inclusively*, ``mask[y0:y1 + 1, x0:x1 + 1]``
  (``utility_fig_rsna.py``), clipped to the image;
* **masks** (SIIM RLE, mask files): the native mask resized with OpenCV's default (bilinear) rule,
  then binarized with ``!= 0`` (``utility_fig_siim.py``: ``mask[mask != 0] = 1``; the scripts read
  pre-resized mask PNGs whose resizing they do not show, so the interpolation is our assumption), so
  any output pixel that a lesion pixel contributes to is in.

``coverage`` — an output pixel is in when at least half of its area is lesion (area averaging), for
boxes and masks alike: exact in area, but not what the paper measured.
"""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from .transforms import resize_mask

MASK_RULES = ("paper", "coverage")
DEFAULT_MASK_RULE = "paper"


def _shape(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def paper_box_mask(boxes: Iterable, native: tuple[int, int], size) -> np.ndarray:
    """Boxes (``x, y, width, height`` in native pixels) of a ``native`` (H, W) image → bool mask of
    ``size`` by the authors' rule (see the module docstring)."""
    height, width = _shape(size)
    native_h, native_w = native
    mask = np.zeros((height, width), dtype=bool)

    def scale(coord: float, out: int, n: int) -> int:
        return int(out * (int(coord) / max(n - 1, 1)))

    for box in boxes:
        x0, x1 = scale(box.x, width, native_w), scale(box.x + box.width, width, native_w)
        y0, y1 = scale(box.y, height, native_h), scale(box.y + box.height, height, native_h)
        mask[max(y0, 0):max(y1 + 1, 0), max(x0, 0):max(x1 + 1, 0)] = True
    return mask


def paper_resized_mask(mask: np.ndarray, size) -> np.ndarray:
    """A native bool mask → bool mask of ``size``: OpenCV bilinear resize, then ``!= 0``."""
    height, width = _shape(size)
    if mask.shape == (height, width):
        return mask.astype(bool, copy=False)
    return cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) != 0


def rasterize(*, boxes=(), native_box_mask: np.ndarray | None = None, other_mask: np.ndarray | None = None,
              native: tuple[int, int], size, rule: str = DEFAULT_MASK_RULE) -> np.ndarray:
    """The union of a record's ground truth at ``size`` under ``rule``.

    ``boxes`` and ``native_box_mask`` describe the same boxes (the latter already drawn at native
    resolution, for the coverage rule); ``other_mask`` is the native mask of RLE rows or mask files."""
    if rule not in MASK_RULES:
        raise ValueError(f"unknown mask rule {rule!r}; choose one of {MASK_RULES}")
    out = np.zeros(_shape(size), dtype=bool)
    if rule == "coverage":
        native_mask = np.zeros(native, dtype=bool)
        if native_box_mask is not None:
            native_mask |= native_box_mask
        if other_mask is not None:
            native_mask |= other_mask
        return resize_mask(native_mask, size)
    if len(boxes):
        out |= paper_box_mask(boxes, native, size)
    if other_mask is not None and other_mask.any():
        out |= paper_resized_mask(other_mask, size)
    return out
