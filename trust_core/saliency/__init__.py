"""Saliency maps, exact, batched and cached: the eight methods of Arun et al. 2021 and the field's newer ones
(the registry: :data:`METHODS`; the named sets: :mod:`trust_core.sets`)."""
from .device import PRECISIONS
from .explain import CODE_VERSION, explain, predicted_classes
from .maps import SaliencyMaps
from .pinned import explain_for_classes
from .postprocess import normalize_maps
from .registry import METHODS, PRESETS, Method, Preset, method_params, resolve_methods, resolve_params

__all__ = ["CODE_VERSION", "METHODS", "PRECISIONS", "PRESETS", "Method", "Preset", "SaliencyMaps", "explain_for_classes",
           "predicted_classes",
           "explain", "method_params", "normalize_maps", "resolve_methods", "resolve_params"]
