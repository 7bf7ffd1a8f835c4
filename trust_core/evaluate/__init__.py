"""The trust criteria over datasets, with baselines, split into cacheable work units.

The names below load lazily (PEP 562): ``trust_core.evaluate.criteria`` can be read without pandas and
the evaluation engine (the CLI's ``--help``)."""
from __future__ import annotations

import importlib

from .criteria import CRITERIA

_FROM_RUN = ("EVAL_CODE_VERSION", "EvalConfig", "EvalResult", "Evaluation", "Unit", "evaluate", "run_units_local",
             "write_outputs")

__all__ = ["CRITERIA", *_FROM_RUN]


def __getattr__(name: str):
    if name in _FROM_RUN:
        return getattr(importlib.import_module(".run", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
