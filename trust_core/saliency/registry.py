"""The method registry and presets: one source for the UI, the CLI, reports and tests.

Preset ``arun2021`` is protocol.md section 2, value for value. Preset ``fast`` trades samples and steps
for interactive CPU use and says so wherever its results appear.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..errors import ConfigError

PAPER = "Arun et al., Radiology: AI 3(6):e200267, 2021"


@dataclass(frozen=True)
class Method:
    """A saliency method as data: label, reference, parameters, capabilities."""

    key: str
    label: str
    reference: str
    description: str
    parameters: tuple[str, ...]  # parameter names this method reads (besides the common ones)
    needs_layer: bool = False  # needs a convolutional target layer (Grad-CAM family)
    uses_noise: bool = False
    passes: str = ""  # forward+backward passes per image, as a formula of its parameters
    depends_on: tuple[str, ...] = ()


METHODS: dict[str, Method] = {m.key: m for m in (
    Method("grad", "Gradient", "Simonyan et al., ICLR workshop 2014",
           "∂ logit / ∂ input", (), passes="1 (shared with IG's α = 1 step)"),
    Method("smoothgrad", "SmoothGrad", "Smilkov et al., arXiv:1706.03825, 2017",
           "mean of squared gradients over noisy copies",
           ("n_samples", "noise_spread", "magnitude", "noise_per_model"),
           uses_noise=True, passes="n_samples (free when Smooth IG runs with the same noise)"),
    Method("ig", "Integrated Gradients", "Sundararajan et al., ICML 2017",
           "Riemann sum over α = linspace(0, 1, steps), both ends, from a constant baseline",
           ("ig_steps", "ig_baseline"), passes="ig_steps − 1"),
    Method("smooth_ig", "Smooth IG", "Smilkov et al. 2017 over Sundararajan et al. 2017",
           "SmoothGrad of Integrated Gradients (mean of squared IG maps)",
           ("n_samples", "noise_spread", "magnitude", "noise_per_model", "smooth_ig_steps", "ig_baseline"),
           uses_noise=True,
           passes="n_samples × smooth_ig_steps"),
    Method("gbp", "Guided Backprop", "Springenberg et al., ICLR workshop 2015",
           "every ReLU passes gradient only where gradient and activation are positive", (),
           passes="1"),
    Method("gradcam", "Grad-CAM", "Selvaraju et al., ICCV 2017",
           "ReLU(Σ_c mean(∂y/∂A_c) A_c) at the last conv block, upsampled to the input size "
           "(gradcam_interpolation)",
           ("gradcam_layer", "gradcam_interpolation"), needs_layer=True, passes="0 (shared with grad)"),
    Method("guided_gradcam", "Guided Grad-CAM", "Selvaraju et al., ICCV 2017",
           "normalized Guided Backprop map × normalized Grad-CAM map, then min–max only",
           ("gradcam_layer", "gradcam_interpolation"),
           needs_layer=True, passes="0 (reuses gbp and gradcam)", depends_on=("gbp", "gradcam")),
    Method("xrai", "XRAI", "Kapishnikov et al., ICCV 2019",
           "IG (black and white baselines) ranked over Felzenszwalb segments, gain density",
           ("xrai_steps", "xrai_baselines", "xrai_algorithm", "xrai_area_threshold",
            "xrai_min_pixel_diff", "xrai_scales", "xrai_sigma", "xrai_min_size", "xrai_dilation_radius",
            "xrai_resize", "xrai_postprocess"), passes="2 × (xrai_steps − 1)"),
)}

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
    "fast": Preset("fast", "Fast (NOT the paper's preset)",
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
    """Validate method keys (None → all eight, registry order)."""
    if methods is None:
        return list(METHODS)
    if isinstance(methods, str):
        methods = [m for m in methods.replace(",", " ").split() if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown saliency method(s) {unknown}; known: {list(METHODS)}")
    return [m for m in METHODS if m in methods]  # registry order, duplicates removed


def resolve_params(preset: str = PAPER_PRESET, **overrides) -> dict:
    """The preset's parameters with overrides applied and validated.

    Raises :class:`ConfigError` for an unknown preset or parameter, or an invalid value.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known: {list(PRESETS)}")
    params = copy.deepcopy(PRESETS[preset].values)
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


def method_params(method: str, params: dict) -> dict:
    """The parameters one method's result depends on (for cache keys and provenance)."""
    spec = METHODS[method]
    names = list(COMMON) + list(spec.parameters)
    for dependency in spec.depends_on:
        names += METHODS[dependency].parameters
    return {name: params[name] for name in sorted(set(names))}
