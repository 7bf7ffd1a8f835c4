"""How a model wants its input: size, channels and value mapping (one object per model, in its
:class:`~trust_core.models.info.ModelInfo`).

Every image reaches the tool as a grayscale film in [0, 1] (``g``). A model's input is
``(g − mean_c) / std_c`` for each of its ``channels`` channels, at ``size × size``:

============  ==========================================  ===========================================
name          mean / std (in units of g)                  model input
============  ==========================================  ===========================================
``paper``     0.5 / 0.5, 3 channels                       the paper's ``x/255·2 − 1`` ∈ [−1, 1]
``imagenet``  (0.485, 0.456, 0.406) / (0.229, 0.224,      torchvision / timm ImageNet statistics
              0.225)
``xrv``       0.5 / 1/2048, 1 channel                     torchxrayvision's ``(2x/255 − 1)·1024`` ∈
                                                          [−1024, 1024]
``unit``      0 / 1                                       [0, 1] (MONAI's ``ScaleIntensity``)
custom        ``{mean = [...], std = [...]}``             your training statistics
============  ==========================================  ===========================================

The resize rule is ``stretch`` (the whole film resized to ``size × size``, area averaging when
shrinking, as the paper) or ``center_crop`` (the film's central square first, as torchxrayvision's
``XRCenterCrop``); ground truth follows the same rule, so maps and masks stay aligned. Saliency maps are computed in this input space (gradients with respect to the tensor
the model sees) and returned at ``size × size``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...], str]] = {
    "paper": ((0.5,), (0.5,), "the paper's [-1, 1] (x/255*2-1)"),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "ImageNet mean/std"),
    "xrv": ((0.5,), (1 / 2048,), "torchxrayvision's [-1024, 1024]"),
    "unit": ((0.0,), (1.0,), "[0, 1] (MONAI's ScaleIntensity habit)"),
}


@dataclass(frozen=True)
class Preprocessing:
    """Input size, channels and the value mapping of one model (see the module docstring)."""

    size: int = 320
    channels: int = 3
    normalization: str = "paper"  # a NORMALIZATIONS name or "custom"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    resize: str = "stretch"

    def __post_init__(self):
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 8 <= self.size <= 4096:
            raise ConfigError(f"preprocessing size must be an integer in [8, 4096], got {self.size!r}")
        if self.channels not in (1, 3):
            raise ConfigError(f"preprocessing channels must be 1 or 3, got {self.channels!r}")
        from ..data.transforms import RESIZE_RULES  # stretch | center_crop (the data layer owns the rules)

        if self.resize not in RESIZE_RULES:
            raise ConfigError(f"preprocessing resize must be one of {RESIZE_RULES}, got {self.resize!r}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, self.channels):
                raise ConfigError(f"preprocessing {name} has {len(values)} values for a {self.channels}-channel "
                                  f"input: give {'one value' if self.channels == 1 else '1 or 3 values'}"
                                  + (" (ImageNet statistics are for 3-channel models)"
                                     if self.normalization == "imagenet" else ""))
        if any(not s > 0 for s in self.std):
            raise ConfigError(f"preprocessing std must be positive, got {list(self.std)}")

    @classmethod
    def named(cls, normalization, *, size: int, channels: int | None = None, resize: str = "stretch"
              ) -> "Preprocessing":
        """From a normalization name (``paper``, ``imagenet``, ``xrv``) or a ``{mean, std}`` table."""
        if isinstance(normalization, dict):
            unknown = set(normalization) - {"mean", "std"}
            if unknown or not {"mean", "std"} <= set(normalization):
                raise ConfigError(f"a custom normalization is {{mean = [...], std = [...]}}, got {normalization}")
            mean = tuple(float(v) for v in np.atleast_1d(normalization["mean"]))
            std = tuple(float(v) for v in np.atleast_1d(normalization["std"]))
            return cls(size=size, channels=channels or (3 if len(mean) == 3 else 1), normalization="custom",
                       mean=mean, std=std, resize=resize)
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalization {normalization!r}; choose one of "
                              f"{list(NORMALIZATIONS)} or {{mean = [...], std = [...]}}")
        mean, std, _ = NORMALIZATIONS[normalization]
        default_channels = 1 if normalization == "xrv" else 3
        return cls(size=size, channels=channels or default_channels, normalization=normalization, mean=mean,
                   std=std, resize=resize)

    @property
    def paper(self) -> bool:
        """The registry's preprocessing (3 channels, [-1, 1]), computed exactly as before specs existed."""
        return self.normalization == "paper" and self.channels == 3

    def _stats(self, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device)
        std = torch.tensor(self.std, dtype=torch.float32, device=device)
        c = self.channels
        return mean.expand(c).reshape(1, c, 1, 1), std.expand(c).reshape(1, c, 1, 1)

    def batch(self, batch01: torch.Tensor) -> torch.Tensor:
        """Grayscale [0, 1] batch (N, 1, H, W) → model input (N, C, H, W)."""
        if self.paper:
            from ..data.transforms import to_model_batch

            return to_model_batch(batch01)
        mean, std = self._stats(batch01.device)
        return (batch01.expand(-1, self.channels, -1, -1) - mean) / std

    def film(self, image01: np.ndarray) -> np.ndarray:
        """A grayscale film of any size → (size, size) by the resize rule (an upload, a native image)."""
        from ..data.transforms import frame

        return frame(image01, self.size, self.resize)

    def __call__(self, image01: np.ndarray) -> torch.Tensor:
        """Grayscale [0, 1] image (H, W) → model input (C, H, W)."""
        if image01.ndim != 2:
            raise ValueError(f"a 2-D grayscale image is expected, got shape {image01.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image01, dtype=np.float32))
        return self.batch(tensor[None, None])[0].contiguous()

    def value(self, gray: float) -> torch.Tensor | float:
        """The model-input value of a uniform grey level ``gray`` (0 black, 1 white): a float for the
        paper's preprocessing (bit-identical arithmetic), else a (C, 1, 1) tensor."""
        if self.paper:
            return float(gray) * 2.0 - 1.0
        mean, std = self._stats()
        return ((gray - mean) / std)[0]

    def from_paper_scale(self, value: float) -> torch.Tensor | float:
        """A constant given on the paper's [-1, 1] scale (IG's baseline: −1 is black), in this input space."""
        if self.paper:
            return value
        return self.value((float(value) + 1.0) / 2.0)

    def as_dict(self) -> dict:
        return {"size": self.size, "channels": self.channels, "normalization": self.normalization,
                "mean": list(self.mean), "std": list(self.std), "resize": self.resize}

    @property
    def label(self) -> str:
        text = NORMALIZATIONS[self.normalization][2] if self.normalization in NORMALIZATIONS else (
            f"custom mean {list(self.mean)} std {list(self.std)}")
        return f"{self.size}×{self.size}, {self.channels} channel{'s' if self.channels > 1 else ''}, {text}"


def paper_preprocessing(size: int, resize: str = "stretch") -> Preprocessing:
    """The registry's preprocessing at ``size``: grayscale replicated to 3 channels, [-1, 1]."""
    return Preprocessing(size=int(size), resize=resize)
