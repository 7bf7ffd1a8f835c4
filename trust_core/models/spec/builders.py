"""Building a spec's architecture with random weights: one builder per zoo (:data:`ZOOS`), a user's
``package.module:callable``, or a ``torch.export`` program."""
from __future__ import annotations

import importlib
import warnings
from pathlib import Path

from torch import nn

from ...errors import CheckpointError, ConfigError
from .program import _load_exported
from .schema import ModelSpec, _err


def _import(package: str, where):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise _err(f"this spec needs the {package!r} package: pip install '.[zoo]' (or pip install {package})",
                   where) from None


def _registry(spec: ModelSpec, name: str, kwargs: dict, where) -> nn.Module:
    from ..registry import build

    model = build(spec.source, num_classes=int(kwargs.pop("num_classes", 2)))
    if kwargs:
        raise _err(f"registry models take only num_classes, got {sorted(kwargs)}", where)
    return model


def _torchvision(spec: ModelSpec, name: str, kwargs: dict, where) -> nn.Module:
    import torchvision

    if name not in torchvision.models.list_models():
        raise _err(f"torchvision has no model {name!r}", where)
    return torchvision.models.get_model(name, weights=None, **kwargs)


def _timm(spec: ModelSpec, name: str, kwargs: dict, where) -> nn.Module:
    timm = _import("timm", where)
    if name not in timm.list_models():
        raise _err(f"timm has no model {name!r} (timm.list_models() lists them)", where)
    return timm.create_model(name, pretrained=False, **kwargs)


def _torchxrayvision(spec: ModelSpec, name: str, kwargs: dict, where) -> nn.Module:
    xrv = _import("torchxrayvision", where)
    builder = getattr(xrv.models, name, None)
    if not isinstance(builder, type) or not issubclass(builder, nn.Module):
        raise _err(f"torchxrayvision.models has no model class {name!r}", where)
    return builder(**{"weights": None, **kwargs})


def _monai(spec: ModelSpec, name: str, kwargs: dict, where) -> nn.Module:
    _import("monai", where)
    builder = getattr(importlib.import_module("monai.networks.nets"), name, None)
    if builder is None:
        raise _err(f"monai.networks.nets has no {name!r}", where)
    return builder(**kwargs)


def _callable(spec: ModelSpec, name: str, kwargs: dict, where) -> nn.Module:
    module_name, _, attr = spec.source.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _err(f"unknown model source {spec.source!r}: {module_name!r} is neither a known zoo "
                   f"(torchvision:NAME, timm:NAME, torchxrayvision:CLASS, monai:NAME) nor an importable "
                   f"module ({exc}; is it on PYTHONPATH?)", where) from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise _err(f"{module_name!r} has no callable {attr!r}", where)
    model = builder(**kwargs)
    if not isinstance(model, nn.Module):
        raise _err(f"{spec.source} returned a {type(model).__name__}, not a torch.nn.Module", where)
    return model


def _pt2(spec: ModelSpec, name: str, kwargs: dict, where) -> nn.Module:
    return _load_exported(Path(spec.source), where)


# source kind → builder(spec, name after the colon, source_kwargs, where) → the architecture, random weights
ZOOS = {"registry": _registry, "torchvision": _torchvision, "timm": _timm, "torchxrayvision": _torchxrayvision,
        "monai": _monai, "callable": _callable, "pt2": _pt2}


def build_model(spec: ModelSpec) -> nn.Module:
    """The spec's architecture with random weights (no download: pretrained weights are refused)."""
    where = spec.path or spec.source
    zoo, name = spec.source_kind, spec.source.partition(":")[2]
    kwargs = dict(spec.source_kwargs)
    for key in kwargs:  # builders must not fetch or read weights themselves (no network; weights_only only)
        lowered = key.lower()
        if (lowered in ("weights", "pretrained") and kwargs[key] not in (None, False)) or any(
                word in lowered for word in ("checkpoint", "url", "cache_dir", "pretrained_cfg", "file", "path")):
            raise _err(f"source_kwargs.{key} would make the builder download or read weights itself; give "
                       f"weights = \"file.pth\" (read with weights_only=True) instead", where)
    if zoo not in ZOOS:
        raise _err(f"unknown model source {spec.source!r}", where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ZOOS[zoo](spec, name, kwargs, where)
    except (ConfigError, CheckpointError):
        raise
    except TypeError as exc:
        raise _err(f"{spec.source} does not accept these source_kwargs ({exc})", where) from None
    except Exception as exc:  # a builder refusing its arguments in its own way (ValueError, AssertionError…)
        raise _err(f"building {spec.source} failed ({type(exc).__name__}: {str(exc)[:300]}); check "
                   f"[source_kwargs]", where) from None
