"""The method registry: every saliency method, one file each, plus third-party plugins.

``METHODS`` maps a key to its :class:`~.base.Method`, in display order: the paper's eight (Arun et al.
2021), then the builtin methods beyond the paper, then plugins. Named sets: ``paper`` (the eight, the
default everywhere) and ``extended`` (every registered method).

Plugins register through the entry-point group ``trust_core.methods`` (loaded by ``registry.load_plugins``,
which checks their parameters against the presets): each entry point names a
:class:`~.base.Method` (or a function returning one), e.g. in a plugin's ``pyproject.toml``::

    [project.entry-points."trust_core.methods"]
    my_method = "my_package.saliency:METHOD"

A plugin that cannot be loaded, or whose key is taken or malformed, is skipped with a warning naming it;
the builtin methods are unaffected.
"""
from __future__ import annotations

import importlib
import re

from ...sets import EXTENDED_SET, PAPER_SET, SETS
from .base import Method, Plan

ENTRY_POINT_GROUP = "trust_core.methods"
_BUILTIN = ("grad", "smoothgrad", "ig", "smooth_ig", "gbp", "gradcam", "guided_gradcam", "xrai",
            "input_x_gradient", "deeplift", "gradient_shap", "occlusion", "gradcam_pp", "scorecam", "lrp")

METHODS: dict[str, Method] = {}
PLUGIN_ERRORS: list[str] = []  # why a plugin was skipped (shown by `trust methods`)


def check_method(method) -> Method:
    """A registrable method, or a ValueError saying what is wrong with it."""
    if not isinstance(method, Method):
        raise ValueError(f"a method must be a trust_core.saliency.methods.Method, got {type(method).__name__}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", method.key or ""):
        raise ValueError(f"method key {method.key!r} must be lower-case letters, digits and '_'")
    if method.combine is None and (method.plan is None or method.assemble is None):
        raise ValueError(f"method {method.key!r} needs plan and assemble functions (or combine)")
    unknown = [d for d in method.depends_on if d not in METHODS and d != method.key]
    if unknown:
        raise ValueError(f"method {method.key!r} depends on unknown methods {unknown}")
    return method


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (its key must be new)."""
    check_method(method)
    if method.key in METHODS:
        raise ValueError(f"method key {method.key!r} is already registered (by {METHODS[method.key].source})")
    METHODS[method.key] = method
    return method


# One colour per method, the same on every page and figure: Tableau 10 in the registry's order (the paper's
# eight first), then Tableau 20's light tones; a plugin beyond them takes one by its key.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
            "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#9edae5")


def method_colour(key: str) -> str:
    """The colour of method ``key`` wherever it is drawn (Metrics, Why it fails, Randomization, figures)."""
    keys = list(METHODS)
    if key in keys and keys.index(key) < len(_PALETTE):
        return _PALETTE[keys.index(key)]
    return _PALETTE[sum(key.encode()) % len(_PALETTE)]


def method_set(name: str) -> list[str]:
    """The keys of a named set: 'paper' (Arun et al.'s eight) or 'extended' (every registered method)."""
    if name == PAPER_SET:
        return [k for k, m in METHODS.items() if m.group == PAPER_SET]
    if name == EXTENDED_SET:
        return list(METHODS)
    raise KeyError(name)



for _name in _BUILTIN:
    register(importlib.import_module(f".{_name}", __name__).METHOD)
# plugins are loaded by registry.py, once the presets their parameters are checked against exist

__all__ = ["ENTRY_POINT_GROUP", "EXTENDED_SET", "METHODS", "PAPER_SET", "PLUGIN_ERRORS", "SETS", "Method", "Plan",
           "check_method", "method_set", "register"]
