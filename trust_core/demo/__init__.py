"""The embedded demo: phantom films (:mod:`.anatomy`), written as real RSNA/SIIM/NIH datasets (:mod:`.films`),
and the demo workspace built from them (:mod:`.build`: trained models, evaluations, analyses).

The build's names load lazily (PEP 562): the CLI reads :data:`ANATOMIES` for its choices without loading
the training and evaluation code."""
from __future__ import annotations

import importlib

from .anatomy import ANATOMIES

_FROM_BUILD = ("DATASETS", "DEMO_EVAL", "DEMO_MODELS", "LOCALIZER_SEEDS", "LOCALIZER_SIZES", "MIN_TEST_AUC",
               "TRANSFER", "build_demo", "demo_anatomy", "evaluate_demo")

__all__ = ["ANATOMIES", *_FROM_BUILD]


def __getattr__(name: str):
    if name in _FROM_BUILD:
        return getattr(importlib.import_module(".build", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
