"""Resizing and model-input preprocessing shared by datasets, the app and the CLI."""
from __future__ import annotations

import cv2
import numpy as np
import torch


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a float image to (H, W): area averaging when shrinking, bilinear when enlarging."""
    height, width = _shape(size)
    if image.shape == (height, width):
        return image.astype(np.float32, copy=False)
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image.astype(np.float32), (width, height), interpolation=interpolation)


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a binary mask: a target pixel is in when at least half of its area is (area averaging)."""
    height, width = _shape(size)
    if mask.shape == (height, width):
        return mask.astype(bool, copy=False)
    return resize_image(mask.astype(np.float32), (height, width)) >= 0.5


def to_model_input(image: np.ndarray) -> torch.Tensor:
    """Grayscale [0, 1] image (H, W) → tensor (3, H, W) in [-1, 1], the paper's ``x/255*2-1``."""
    if image.ndim != 2:
        raise ValueError(f"a 2-D grayscale image is expected, got shape {image.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    return to_model_batch(tensor[None, None])[0].contiguous()


def to_model_batch(batch01: torch.Tensor) -> torch.Tensor:
    """Grayscale [0, 1] batch (N, 1, H, W) → (N, 3, H, W) in [-1, 1] (the channel replicated, not copied)."""
    return (batch01 * 2.0 - 1.0).expand(-1, 3, -1, -1)


RESIZE_RULES = ("stretch", "center_crop")


def crop_window(shape: tuple[int, int], rule: str) -> tuple[int, int, int, int]:
    """``(y0, x0, height, width)`` of the part of a (H, W) film a resize rule keeps: all of it
    (``stretch``, the paper's) or its central square (``center_crop``, torchxrayvision's XRCenterCrop)."""
    height, width = int(shape[0]), int(shape[1])
    if rule == "stretch":
        return 0, 0, height, width
    if rule == "center_crop":
        side = min(height, width)
        return (height - side) // 2, (width - side) // 2, side, side
    raise ValueError(f"unknown resize rule {rule!r}; choose one of {RESIZE_RULES}")


def crop(image: np.ndarray, rule: str = "stretch") -> np.ndarray:
    """The part of a native film (or mask) a resize rule keeps, at native resolution."""
    y0, x0, h, w = crop_window(image.shape, rule)
    return image[y0:y0 + h, x0:x0 + w]


def frame(image: np.ndarray, size: int | tuple[int, int], rule: str = "stretch") -> np.ndarray:
    """A native film (or mask as float) cropped by ``rule`` and resized to ``size`` (see resize_image)."""
    return resize_image(crop(image, rule), size)
