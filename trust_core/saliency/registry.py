"""The method registry and presets: one source for the UI, the CLI, reports and tests.

Preset ``arun2021`` is protocol.md section 2, value for value. Preset ``fast`` trades samples and steps
for interactive CPU use and says so wherever its results appear.
"""
from __future__ import annotations

import copy
import dataclasses
import warnings
from importlib.metadata import entry_points
from dataclasses import dataclass, field

from ..errors import ConfigError
from .methods import (ENTRY_POINT_GROUP, EXTENDED_SET, METHODS, PAPER_SET, PLUGIN_ERRORS, SETS, Method, check_method,
                      method_colour, method_set, register)

PAPER = "Arun et al., Radiology: AI 3(6):e200267, 2021"


COMMON = ("target", "percentile", "seed")

# Grad-CAM upsampling rules. 'tf1_legacy' is TF1's ``tf.image.resize_bilinear`` (align_corners=False,
# no half-pixel centres: source = destination × in/out), which PAIR's GradCam used until October 2020;
# 'bilinear' is half-pixel-centred bilinear (PyTorch ``align_corners=False``, TF2 ``tf.image.resize``,
# captum's ``LayerAttribution.interpolate``). README "Fidelity" gives the evidence for the default.
GRADCAM_INTERPOLATIONS = ("tf1_legacy", "bilinear", "bicubic", "nearest")
GRADCAM_DEFAULT_INTERPOLATION = "tf1_legacy"

_ARUN2021 = {
    "target": "predicted",  # pre-softmax logit of the predicted class
    "percentile": 99.0,
    "seed": 0,
    "n_samples": 25,
    "noise_spread": 0.15,  # σ = spread × (max − min) of the preprocessed input
    # Noise drawn per image *and* model state (the paper drew fresh noise for every map); False: one
    # draw per image shared by every model (biases randomization and repeatability toward similarity).
    "noise_per_model": True,
    "magnitude": True,  # mean of squared gradients
    "ig_steps": 10,
    "ig_baseline": -1.0,  # black in [-1, 1]
    "smooth_ig_steps": 10,  # IG steps inside Smooth IG
    "gradcam_layer": None,  # the architecture's registry entry
    "gradcam_interpolation": GRADCAM_DEFAULT_INTERPOLATION,
    "xrai_steps": 100,
    "xrai_baselines": "image_min_max",  # PAIR's default: black and white of the image itself
    "xrai_algorithm": "full",
    "xrai_area_threshold": 1.0,
    "xrai_min_pixel_diff": 50,
    "xrai_scales": (50, 100, 150, 250, 500, 1200),
    "xrai_sigma": 0.8,
    "xrai_min_size": 150,
    "xrai_dilation_radius": 5,
    "xrai_resize": 224,
    # 'abs': PAIR's VisualizeImageGrayscale as the paper's scripts ran it (abs makes negative-density
    # segments salient); 'minmax': plain min–max of the gain density (least important = 0).
    "xrai_postprocess": "abs",
}


PAPER_PRESET = "arun2021"  # the paper's preset: every default that means "as the paper" names it
FAST_PRESET = "fast"  # the interactive preset (the app's and the demo's default): every such default names it


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    description: str
    values: dict = field(default_factory=dict)
    paper: bool = False


PRESETS: dict[str, Preset] = {
    PAPER_PRESET: Preset(PAPER_PRESET, "Paper (Arun et al. 2021)",
                       "Every parameter as in the paper: SmoothGrad 25 samples σ=0.15, IG 10 steps, "
                       "Smooth IG 25×10, XRAI 2×100 steps, 'full' ranking.", dict(_ARUN2021), paper=True),
    FAST_PRESET: Preset(FAST_PRESET, "Fast (NOT the paper's preset)",
                   "Fewer samples and steps for interactive CPU use: SmoothGrad/Smooth IG 8 samples, "
                   "Smooth IG 8×5, XRAI 2×20 steps. Maps are noisier than the paper's.",
                   {**_ARUN2021, "n_samples": 8, "smooth_ig_steps": 5, "xrai_steps": 20}),
}
_CHOICES = {
    "gradcam_interpolation": GRADCAM_INTERPOLATIONS,
    "xrai_postprocess": ("abs", "minmax"),
    "xrai_baselines": ("image_min_max", "black_white"),
    "xrai_algorithm": ("full", "fast"),
}


def resolve_methods(methods) -> list[str]:
    """Validate method keys, in registry order without duplicates. ``None`` → the paper's eight; a set
    name ('paper', 'extended') stands for its methods."""
    if methods is None:
        return method_set(PAPER_SET)
    if isinstance(methods, str):
        methods = [m for m in methods.replace(",", " ").split() if m]
    chosen = set()
    for m in methods:
        chosen |= set(method_set(m)) if m in SETS else {m}
    unknown = [m for m in methods if m not in METHODS and m not in SETS]
    if unknown:
        raise ConfigError(f"unknown saliency method(s) {unknown}; known: {list(METHODS)} (or a set: {list(SETS)})")
    return [m for m in METHODS if m in chosen]


def _all_values(preset: Preset) -> dict:
    """A preset's values with every registered method's own defaults (the preset's win)."""
    values = {}
    for method in METHODS.values():
        values.update(copy.deepcopy(method.defaults))
    values.update(copy.deepcopy(preset.values))
    return values


def resolve_params(preset: str = PAPER_PRESET, **overrides) -> dict:
    """The preset's parameters with overrides applied and validated.

    Raises :class:`ConfigError` for an unknown preset or parameter, or an invalid value.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known: {list(PRESETS)}")
    params = _all_values(PRESETS[preset])
    unknown = [k for k in overrides if k not in params]
    if unknown:
        raise ConfigError(f"unknown saliency parameter(s) {unknown}; known: {sorted(params)}")
    params.update({k: v for k, v in overrides.items()})
    _validate(params)
    params["preset"] = preset
    params["xrai_scales"] = tuple(params["xrai_scales"])
    return params


def _validate(p: dict) -> None:
    def positive_int(name):
        if not isinstance(p[name], int) or isinstance(p[name], bool) or p[name] < 1:
            raise ConfigError(f"{name} must be a positive integer, got {p[name]!r}")

    for name in ("n_samples", "ig_steps", "smooth_ig_steps", "xrai_steps", "xrai_min_size",
                 "xrai_resize"):
        positive_int(name)
    if not isinstance(p["xrai_min_pixel_diff"], int) or p["xrai_min_pixel_diff"] < 1:
        raise ConfigError(f"xrai_min_pixel_diff must be a positive integer, got {p['xrai_min_pixel_diff']!r}")
    if not isinstance(p["xrai_dilation_radius"], int) or p["xrai_dilation_radius"] < 0:
        raise ConfigError(f"xrai_dilation_radius must be a non-negative integer, got {p['xrai_dilation_radius']!r}")
    for name, low, high in (("noise_spread", 0.0, 10.0), ("percentile", 50.0, 100.0),
                            ("xrai_area_threshold", 0.0, 1.0), ("ig_baseline", -1e6, 1e6),
                            ("xrai_sigma", 0.0, 100.0)):
        value = p[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ConfigError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    for name, choices in _CHOICES.items():
        if p[name] not in choices:
            raise ConfigError(f"{name} must be one of {choices}, got {p[name]!r}")
    if not (p["target"] == "predicted" or (isinstance(p["target"], int) and p["target"] >= 0)):
        raise ConfigError(f"target must be 'predicted' or a class index, got {p['target']!r}")
    if not all(isinstance(s, (int, float)) and s > 0 for s in p["xrai_scales"]) or not p["xrai_scales"]:
        raise ConfigError(f"xrai_scales must be positive numbers, got {p['xrai_scales']!r}")
    if not isinstance(p["noise_per_model"], bool):
        raise ConfigError(f"noise_per_model must be true or false, got {p['noise_per_model']!r}")
    if not isinstance(p["seed"], int):
        raise ConfigError(f"seed must be an integer, got {p['seed']!r}")
    for method in METHODS.values():  # each method's own parameters
        _check_method_params(method, p)


def _check_method_params(method: Method, p: dict) -> None:
    """One method's own parameters in ``p``: its choices and its ``validate`` (ConfigError naming it)."""
    for name, choices in method.choices.items():
        if p[name] not in choices:
            raise ConfigError(f"{name} ({method.label}) must be one of {choices}, got {p[name]!r}")
    if method.validate is not None:
        try:
            method.validate(p)
        except ConfigError:
            raise
        except Exception as error:
            raise ConfigError(f"{method.label}: {error}") from None


def method_params(method: str, params: dict) -> dict:
    """The parameters one method's result depends on (for cache keys and provenance)."""
    spec = METHODS[method]
    names = list(COMMON) + list(spec.parameters)
    for dependency in spec.depends_on:
        names += METHODS[dependency].parameters
    return {name: params[name] for name in sorted(set(names))}


def check_plugin(method: Method) -> None:
    """A plugin's parameters must have defaults (its own or the presets') that pass its own checks: else it is
    refused at load time, and can never make ``explain`` fail for the other methods."""
    known = dict(_ARUN2021)
    for other in METHODS.values():
        known.update(other.defaults)
    known.update(method.defaults)
    undeclared = [name for name in (*method.parameters, *method.choices) if name not in known]
    if undeclared:
        raise ValueError(f"it reads parameters {undeclared} without defaults: give them in Method.defaults")
    try:
        _check_method_params(method, known)
    except ConfigError as error:
        raise ValueError(f"its defaults fail its own checks: {error}") from None


def load_plugins(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Register the methods of every installed plugin whose parameters check out against the presets
    (``registry.check_plugin``); returns the keys added."""
    added = []
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
            method = obj() if callable(obj) and not isinstance(obj, Method) else obj
            if isinstance(method, Method) and method.group == PAPER_SET:
                method = dataclasses.replace(method, group=EXTENDED_SET)  # only the paper's eight are the paper's
            if isinstance(method, Method) and method.source == "trust_core":
                method = dataclasses.replace(method, source=getattr(ep.dist, "name", None) or ep.value)
            check_method(method)
            check_plugin(method)
            register(method)
            added.append(method.key)
        except Exception as error:  # a broken plugin must not take the tool down
            message = (f"saliency plugin {ep.name!r} ({ep.value}) was not loaded: {type(error).__name__}: {error}")
            PLUGIN_ERRORS.append(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    return added



load_plugins()


def estimate_passes(methods, params: dict, size: int = 224) -> tuple[int | None, int | None]:
    """(forward+backward, forward-only) passes per image that ``methods`` cost together under ``params``,
    sharing as the engine does (one plain pass; SmoothGrad's samples are Smooth IG's last points); None where a
    method states no cost (a plugin). The engine counts the real passes: this is for time estimates."""
    keys = resolve_methods(methods)
    need = set(keys)
    for key in keys:
        need |= set(METHODS[key].depends_on)
    chosen = [METHODS[k] for k in need]
    passes = 1 if any(m.plain for m in chosen) else 0
    forwards = 0
    for method in chosen:
        if method.cost is None and method.forward_cost is None and method.combine is None:
            return None, None
        passes += method.cost(params) if method.cost else 0
        forwards += method.forward_cost(params, size) if method.forward_cost else 0
    if {"smoothgrad", "smooth_ig"} <= need:
        passes -= params["n_samples"]  # read off Smooth IG's paths
    return passes, forwards
