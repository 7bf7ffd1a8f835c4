"""Model zoo: architecture registry, checkpoints (weights_only), training.

The names below load lazily (PEP 562), so that reading the registry does not load the training code
(scikit-learn, the dataset readers): ``trust --help`` stays fast."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load": ".checkpoint", "read_checkpoint": ".checkpoint", "save": ".checkpoint",
    "ARCHITECTURES": ".registry", "Architecture": ".registry", "build": ".registry",
    "forward_order": ".registry", "get_architecture": ".registry", "get_module": ".registry",
    "TrainConfig": ".train", "TrainResult": ".train", "train_classifier": ".train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
