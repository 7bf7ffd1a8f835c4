"""Model specs: any PyTorch chest X-ray classifier, described by a small TOML file beside its weights.

.. code-block:: toml

    source = "torchvision:densenet121"   # timm:NAME | torchxrayvision:CLASS | monai:NAME | pkg.mod:callable | model.pt2
    weights = "chexnet14.pth"            # relative to this file; omitted for a .pt2 source
    target = "Pneumonia"                 # a class name or an index; omitted: the predicted class (softmax heads)

    [source_kwargs]                      # passed to the builder, e.g. num_classes = 14
    num_classes = 14

    [preprocessing]
    size = 224
    channels = 3
    normalization = "imagenet"           # "paper" ([-1, 1]) | "imagenet" | "xrv" | {mean = [...], std = [...]}

    [outputs]
    activation = "sigmoid"               # softmax | sigmoid | logits
    classes = ["Atelectasis", "Cardiomegaly", "..."]

    # optional: gradcam_layer = "features.norm5"; [cascade] blocks = [...]

Weights are read with ``torch.load(weights_only=True)`` or safetensors, never by unpickling code; common
wrapper prefixes (``module.``, ``model.``) are stripped and keys that do not fit are listed. The Grad-CAM
layer and the cascade blocks are detected with forward hooks unless the spec names them
(:func:`detect_gradcam_layer`, :func:`detect_blocks`). The explained scalar is always the target's
*logit* (pre-activation), as in the paper.
"""
from __future__ import annotations

import importlib
import math
import re
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .info import info_of, tag
from .registry import forward_order
from .preprocessing import Preprocessing

ACTIVATIONS = ("softmax", "sigmoid", "logits")
SOURCE_KINDS = ("registry", "torchvision", "timm", "torchxrayvision", "monai", "callable", "pt2")
_PACKAGES = {"timm": "timm", "torchxrayvision": "torchxrayvision", "monai": "monai"}
_TOP_KEYS = {"source", "weights", "target", "source_kwargs", "preprocessing", "outputs", "gradcam_layer",
             "cascade", "name"}
_PREP_KEYS = {"size", "channels", "normalization", "resize"}
_OUT_KEYS = {"activation", "classes"}
_STRIPPED_PREFIXES = ("module.", "model.")


def _err(message: str, path) -> ConfigError:
    return ConfigError(message, path=path)


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model spec (see the module docstring). ``path`` is the TOML file (None for flags)."""

    source: str
    weights: Path | None = None
    source_kwargs: dict = field(default_factory=dict)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    activation: str = "softmax"
    classes: tuple[str, ...] | None = None
    target: str | int | None = None
    gradcam_layer: str | None = None
    cascade: tuple[str, ...] | None = None  # module paths; states top-down in reverse forward order
    path: Path | None = None
    name: str | None = None

    @property
    def kind(self) -> str:
        return source_kind(self.source)

    def as_dict(self) -> dict:
        """What the maps depend on besides the weights: part of the cache fingerprint and config.json."""
        return {"source": self.source, "weights": self.weights.name if self.weights else None,
                "source_kwargs": self.source_kwargs, "preprocessing": self.preprocessing.as_dict(),
                "activation": self.activation, "classes": list(self.classes) if self.classes else None,
                "target": self.target, "gradcam_layer": self.gradcam_layer,
                "cascade": list(self.cascade) if self.cascade else None}


def source_kind(source: str) -> str:
    """Which builder a source names (see ``SOURCE_KINDS``)."""
    from .registry import ARCHITECTURES

    if source.endswith(".pt2"):
        return "pt2"
    if source in ARCHITECTURES:
        return "registry"
    prefix, _, rest = source.partition(":")
    if prefix in ("torchvision", "timm", "torchxrayvision", "monai") and rest:
        return prefix
    if rest and all(part.isidentifier() for part in prefix.split(".")) and rest.isidentifier():
        return "callable"
    raise ConfigError(
        f"unknown model source {source!r}: use a registry name ({', '.join(ARCHITECTURES)}), "
        f"'torchvision:NAME', 'timm:NAME', 'torchxrayvision:CLASS', 'monai:NAME', 'package.module:callable' "
        f"or a torch.export program 'model.pt2'")


def read_spec(path: str | Path) -> ModelSpec:
    """Read and validate a TOML model spec; every error names the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("model spec not found", path=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _err(f"not a valid TOML file ({exc}); see README 'Bring your own model' for the format", path) from None
    return spec_from_dict(data, path=path)


def spec_from_dict(data: dict, *, path: Path | None = None, base: Path | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from the TOML table (or the CLI's flags); relative paths are resolved
    against the spec file's folder (or ``base``)."""
    where = path
    base = (path.parent if path is not None else base) or Path.cwd()
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _err(f"unknown key(s) {sorted(unknown)}; a spec has {sorted(_TOP_KEYS)}", where)
    source = data.get("source")
    if not isinstance(source, str) or not source:
        raise _err("the spec needs a source = \"...\" (e.g. \"torchvision:densenet121\")", where)
    if source.endswith(".pt2"):
        source = str((base / source).resolve()) if not Path(source).is_absolute() else source
    try:
        kind = source_kind(source)
    except ConfigError as exc:
        raise _err(exc.reason, where) from None
    weights = data.get("weights")
    if weights is not None:
        if not isinstance(weights, str):
            raise _err(f"weights must be a file name, got {weights!r}", where)
        weights = Path(weights) if Path(weights).is_absolute() else (base / weights)
        # any name (CheXNet ships .pth.tar): the file is read by its content, with weights_only or safetensors
    elif kind not in ("pt2",):
        weights = None  # random initialization (tests, or `trust train` from scratch)
    kwargs = data.get("source_kwargs", {})
    if not isinstance(kwargs, dict):
        raise _err("[source_kwargs] must be a table of keyword arguments", where)
    prep_table = data.get("preprocessing", {})
    if not isinstance(prep_table, dict) or set(prep_table) - _PREP_KEYS:
        raise _err(f"[preprocessing] takes {sorted(_PREP_KEYS)}, got {prep_table!r}", where)
    size = prep_table.get("size", 224 if kind not in ("registry", "pt2") else None)
    if kind == "registry" and size is None:
        from .registry import get_architecture
        size = get_architecture(source).input_size
    channels = prep_table.get("channels")
    if kind == "pt2" and size is None:  # the program's own input (N, C, S, S)
        program_prep = exported_spec(source).preprocessing
        size, channels = program_prep.size, channels or program_prep.channels
    try:
        default = ("paper" if kind in ("registry", "pt2") else
                   "unit" if channels == 1 else "imagenet")
        prep = Preprocessing.named(prep_table.get("normalization", default),
                                   size=size, channels=channels,
                                   resize=prep_table.get("resize", "stretch"))
    except ConfigError as exc:
        raise _err(exc.reason, where) from None
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict) or set(outputs) - _OUT_KEYS:
        raise _err(f"[outputs] takes {sorted(_OUT_KEYS)}, got {outputs!r}", where)
    activation = outputs.get("activation", "softmax")
    if activation not in ACTIVATIONS:
        raise _err(f"outputs.activation must be one of {ACTIVATIONS}, got {activation!r}", where)
    classes = outputs.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
                                or not classes):
        raise _err(f"outputs.classes must be a list of names, got {classes!r}", where)
    target = data.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (str, int))
                               or (isinstance(target, int) and target < 0)):
        raise _err(f"target must be a class name or a non-negative index, got {target!r}", where)
    layer = data.get("gradcam_layer")
    if layer is not None and (not isinstance(layer, str) or not layer):
        raise _err(f"gradcam_layer must be a dotted module path, got {layer!r}", where)
    cascade = data.get("cascade")
    blocks = None
    if cascade is not None:
        blocks = cascade.get("blocks") if isinstance(cascade, dict) else None
        if not isinstance(blocks, list) or not blocks or not all(isinstance(b, str) and b for b in blocks):
            raise _err("[cascade] blocks must be a list of module paths, e.g. blocks = [\"layer1\", \"fc\"]", where)
        blocks = tuple(blocks)
    return ModelSpec(source=source, weights=weights, source_kwargs=dict(kwargs), preprocessing=prep,
                     activation=activation, classes=tuple(classes) if classes else None, target=target,
                     gradcam_layer=layer, cascade=blocks, path=path, name=data.get("name"))


# -- building --------------------------------------------------------------------------------------

def _import(package: str, where):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise _err(f"this spec needs the {package!r} package: pip install '.[zoo]' (or pip install {package})",
                   where) from None


def build_model(spec: ModelSpec) -> nn.Module:
    """The spec's architecture with random weights (no download: pretrained weights are refused)."""
    where = spec.path or spec.source
    kind, name = spec.kind, spec.source.partition(":")[2]
    kwargs = dict(spec.source_kwargs)
    for key in kwargs:  # builders must not fetch or read weights themselves (no network; weights_only only)
        lowered = key.lower()
        if (lowered in ("weights", "pretrained") and kwargs[key] not in (None, False)) or any(
                word in lowered for word in ("checkpoint", "url", "cache_dir", "pretrained_cfg", "file", "path")):
            raise _err(f"source_kwargs.{key} would make the builder download or read weights itself; give "
                       f"weights = \"file.pth\" (read with weights_only=True) instead", where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "registry":
                from .registry import build
                model = build(spec.source, num_classes=int(kwargs.pop("num_classes", 2)))
                if kwargs:
                    raise _err(f"registry models take only num_classes, got {sorted(kwargs)}", where)
                return model
            if kind == "torchvision":
                import torchvision
                if name not in torchvision.models.list_models():
                    raise _err(f"torchvision has no model {name!r}", where)
                return torchvision.models.get_model(name, weights=None, **kwargs)
            if kind == "timm":
                timm = _import("timm", where)
                if name not in timm.list_models():
                    raise _err(f"timm has no model {name!r} (timm.list_models() lists them)", where)
                return timm.create_model(name, pretrained=False, **kwargs)
            if kind == "torchxrayvision":
                xrv = _import("torchxrayvision", where)
                builder = getattr(xrv.models, name, None)
                if not isinstance(builder, type) or not issubclass(builder, nn.Module):
                    raise _err(f"torchxrayvision.models has no model class {name!r}", where)
                return builder(**{"weights": None, **kwargs})
            if kind == "monai":
                _import("monai", where)
                nets = importlib.import_module("monai.networks.nets")
                builder = getattr(nets, name, None)
                if builder is None:
                    raise _err(f"monai.networks.nets has no {name!r}", where)
                return builder(**kwargs)
            if kind == "callable":
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
            if kind == "pt2":
                return _load_exported(Path(spec.source), where)
    except (ConfigError, CheckpointError):
        raise
    except TypeError as exc:
        raise _err(f"{spec.source} does not accept these source_kwargs ({exc})", where) from None
    except Exception as exc:  # a builder refusing its arguments in its own way (ValueError, AssertionError…)
        raise _err(f"building {spec.source} failed ({type(exc).__name__}: {str(exc)[:300]}); check "
                   f"[source_kwargs]", where) from None
    raise _err(f"unknown model source {spec.source!r}", where)


def _read_program(path: Path):
    """A ``torch.export`` program, or a clear error naming the file."""
    if not path.is_file():
        raise CheckpointError("exported program (.pt2) not found", path=path)
    try:
        return torch.export.load(str(path))
    except Exception as exc:  # torch.export.load fails in many ways on files that are not programs
        raise CheckpointError(f"not a readable torch.export program ({type(exc).__name__}: {str(exc)[:200]}); "
                              f"re-export it with torch.export.save(torch.export.export(model, (x,)), path)",
                              path=path) from None


def _load_exported(path: Path, where) -> nn.Module:
    """A ``torch.export`` program as a module with its original hierarchy (hooks, Grad-CAM, cascade)."""
    module = torch.export.unflatten(_read_program(path))
    for sub in module.modules():  # the tracer's fake tensors in node metadata cannot be deep-copied, and the
        graph = getattr(sub, "graph", None)  # interpreter does not need them (cascade copies the model)
        if isinstance(graph, torch.fx.Graph):
            for node in graph.nodes:
                node.meta = {}
    return module


def _state_dict_of(spec: ModelSpec) -> dict:
    """The weights file's tensors, safely (weights_only / safetensors), wrapper prefixes stripped."""
    from .weights import FORMAT, _strip_prefixes, read_checkpoint

    from .weights import file_format

    path = spec.weights
    if not path.is_file():
        raise CheckpointError(f"weights file not found (spec {spec.path.name if spec.path else ''})", path=path)
    if path.stat().st_size and file_format(path) == "safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise CheckpointError("reading .safetensors needs the safetensors package: pip install '.[zoo]'",
                                  path=path) from None
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"not a readable safetensors file ({str(exc)[:200]})", path=path) from None
    else:
        payload = read_checkpoint(path)
        state = payload["state_dict"] if payload.get("format") == FORMAT else payload.get("state_dict", payload)
        for key in ("model", "model_state_dict", "net"):  # common training-script wrappers
            if isinstance(state, dict) and isinstance(state.get(key), dict) and not isinstance(state.get(key), torch.Tensor):
                state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("the weights file does not map parameter names to tensors; save it with "
                              "torch.save(model.state_dict(), path)", path=path)
    return _strip_prefixes(state)


_LEGACY_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def adapt_keys(state: dict, expected: dict) -> tuple[dict, list[str]]:
    """Names of a shared checkpoint mapped onto the model's, where the mapping is unambiguous: a wrapper
    prefix (the original CheXNet's ``densenet121.``), torchvision's legacy DenseNet names (``norm.1`` →
    ``norm1``, as torchvision's own loader does) and a ``Sequential(Linear, …)`` head (``classifier.0.`` →
    ``classifier.``). Returns the state and what was done."""
    notes = []
    if not (state.keys() & expected.keys()):
        first = next(iter(state))
        parts = first.split(".")
        for cut in range(1, len(parts)):
            prefix = ".".join(parts[:cut]) + "."
            if all(k.startswith(prefix) for k in state):
                stripped = {k[len(prefix):]: v for k, v in state.items()}
                if len(stripped.keys() & expected.keys()) > len(state.keys() & expected.keys()):
                    state, notes = stripped, [f"stripped the prefix {prefix!r}"]
                    break
    if not (state.keys() & expected.keys()) and expected:  # a wrapper prefix stripped too eagerly ("model.":
        prefix = next(iter(expected)).split(".")[0] + "."  # torchxrayvision's ResNet keeps its torchvision there)
        if all(k.startswith(prefix) for k in expected) and {prefix + k for k in state} & expected.keys():
            state = {prefix + k: v for k, v in state.items()}
            notes = [f"restored the prefix {prefix!r}"]
    legacy = {k: _LEGACY_DENSENET.sub(r"\1\2", k) for k in state}
    if any(k != v for k, v in legacy.items()) and any(v in expected and k not in expected for k, v in legacy.items()):
        state = {legacy[k]: v for k, v in state.items()}
        notes.append("renamed torchvision's legacy DenseNet keys (norm.1 → norm1)")
    for head in ("classifier", "fc", "head"):
        old = {k for k in state if k.startswith(f"{head}.0.")}
        if old and f"{head}.weight" in expected and f"{head}.weight" not in state:
            state = {(f"{head}." + k[len(head) + 3:] if k in old else k): v for k, v in state.items()}
            notes.append(f"read {head}.0 (a Sequential head, its activation dropped: the logit is explained) as {head}")
    return state, notes


# Buffers a zoo saves with its pretrained weights that its weight-less build does not register (state_dict()
# of a pretrained model), by source kind: what each is, and why it is left out of the model.
KNOWN_BUFFERS = {
    "torchxrayvision": {
        "op_threshs": "torchxrayvision's operating-point thresholds (they rescale the sigmoid output so that each "
                      "threshold maps to 0.5); recorded, not applied: the logit is explained",
    },
}


def _set_aside_known_buffers(state: dict, model: nn.Module, spec: ModelSpec) -> tuple[dict, dict, list[str]]:
    """``state`` without the zoo's known extra buffers that ``model`` does not register (a torchxrayvision
    state_dict saved from a pretrained model carries ``op_threshs``): (state, {name: values}, notes)."""
    known = KNOWN_BUFFERS.get(spec.kind, {})
    expected = model.state_dict().keys()
    extra = {k: v for k, v in state.items() if k.split(".")[-1] in known and k not in expected
             and k.split(".")[-1] not in expected}
    if not extra:
        return state, {}, []
    kept = {k: v for k, v in state.items() if k not in extra}
    values = {k: [None if x != x else float(x) for x in v.detach().float().reshape(-1).tolist()] for k, v in extra.items()}
    notes = [f"set aside {k} ({v.numel()} values): {known[k.split('.')[-1]]}" for k, v in extra.items()]
    return kept, values, notes


def _fit_weights(model: nn.Module, state: dict, spec: ModelSpec) -> list[str]:
    expected = model.state_dict()
    state, notes = adapt_keys(state, expected)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [(k, tuple(state[k].shape), tuple(expected[k].shape))
                  for k in state if k in expected and state[k].shape != expected[k].shape]
    untracked = [k for k in missing if k.endswith("num_batches_tracked")]  # checkpoints older than PyTorch 0.4.1
    missing = [k for k in missing if k not in untracked]
    if not (missing or unexpected or mismatched):
        model.load_state_dict(state, strict=not untracked)
        return notes + ([f"{len(untracked)} BatchNorm counters absent (an older PyTorch's file)"] if untracked else [])
    hints = []
    first_conv = next((k for k, v in expected.items() if v.ndim == 4), None)
    if first_conv and any(k == first_conv for k, *_ in mismatched):
        saved = state[first_conv].shape[1]
        hints.append(f"the weights take {saved}-channel input but the spec builds "
                     f"{expected[first_conv].shape[1]} channels: set [preprocessing] channels = {saved} "
                     f"(and the builder's in_chans/in_channels)")
    heads = [(k, s, e) for k, s, e in mismatched if len(s) == 2 and len(e) == 2 and s[1] == e[1]]
    if heads:
        k, s, e = heads[-1]
        hints.append(f"the weights have {s[0]} outputs but the spec builds {e[0]}: set num_classes = {s[0]} "
                     f"in [source_kwargs] and list {s[0]} names in [outputs] classes")
    raise CheckpointError(
        f"these weights do not fit {spec.source}: {len(missing)} missing (e.g. {missing[:4]}), "
        f"{len(unexpected)} unexpected (e.g. {unexpected[:4]}), {len(mismatched)} of another shape "
        f"(e.g. {[f'{k}: {s} vs {e}' for k, s, e in mismatched[:3]]}). "
        + (" ".join(hints) if hints else "Check source and source_kwargs against the training code."),
        path=spec.weights)


def _probe(model: nn.Module, prep: Preprocessing) -> torch.Tensor:
    """A deterministic grey test film in the model's input space (1, C, S, S)."""
    g = torch.Generator().manual_seed(0)
    gray = 0.35 + 0.3 * torch.rand((1, 1, prep.size, prep.size), generator=g)
    return prep.batch(gray)


def _output_count(model: nn.Module, prep: Preprocessing, where) -> int:
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model(_probe(model, prep))
    except Exception as exc:
        raise _err(f"one forward pass on a {prep.channels}×{prep.size}×{prep.size} input failed "
                   f"({type(exc).__name__}: {str(exc)[:300]}): check [preprocessing] size and channels", where) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _err(f"the model returns {shape}, not logits (N, K): wrap it so that forward returns the logits",
                   where)
    return int(out.shape[1])


def _resolve_target(spec: ModelSpec, classes: tuple[str, ...] | None, n_out: int, where) -> int | None:
    target = spec.target
    if target is None:
        if spec.activation == "softmax" and n_out > 1:
            return None  # the predicted class, as in the paper
        if n_out == 1:
            return 0
        raise _err(f"a {spec.activation} head with {n_out} outputs needs target = \"<class name>\" or an index"
                   + (f"; its classes: {list(classes)}" if classes else ""), where)
    if isinstance(target, int):
        if target >= n_out:
            raise _err(f"target {target} is out of range: the model has {n_out} outputs", where)
        return target
    if not classes:
        raise _err(f"target {target!r} is a name but the spec lists no [outputs] classes: add them or give an index",
                   where)
    if target not in classes:
        folded = [c for c in classes if c.casefold() == target.casefold()]
        if len(folded) == 1:  # case-insensitive ("pneumonia" for "Pneumonia"), when that names one output
            return classes.index(folded[0])
        alias = TARGET_ALIASES.get(target.casefold())
        hint = f" (did you mean {alias!r}?)" if alias and any(c.casefold() == alias.casefold() for c in classes) else ""
        raise _err(f"target {target!r} is not among the outputs{hint}; choose one of {list(classes)}", where)
    return classes.index(target)


# a dataset's name for a finding → a model's usual name for it (a hint when a target is not found)
TARGET_ALIASES = {"infiltrate": "Infiltration", "infiltration": "Infiltrate", "airspace opacity": "Lung Opacity",
                  "lung opacity": "Airspace Opacity", "pleural effusion": "Effusion", "effusion": "Pleural Effusion"}


def exported_spec(path: str | Path) -> ModelSpec:
    """The spec of a bare ``.pt2`` program: the paper's preprocessing, size and channels read from the
    program's input."""
    path = Path(path).resolve()
    program = _read_program(path)
    inputs = [n for n in program.graph.nodes if n.op == "placeholder"
              and n.name in {s.arg.name for s in program.graph_signature.input_specs
                             if s.kind == torch.export.graph_signature.InputKind.USER_INPUT}]
    shape = tuple(inputs[0].meta["val"].shape) if inputs and "val" in inputs[0].meta else ()
    if len(shape) != 4 or shape[2] != shape[3]:
        raise CheckpointError(f"the program's input has shape {shape}; write a spec (.toml) with its "
                              f"[preprocessing]", path=path)
    channels, size = int(shape[1]), int(shape[2])
    return ModelSpec(source=str(path), preprocessing=Preprocessing.named("paper", size=size, channels=channels),
                     path=None)


def load_spec(spec: ModelSpec | str | Path, *, device: str | torch.device = "cpu",
              state: dict | None = None) -> nn.Module:
    """Build, load and describe a spec'd model: the weights checked against the architecture, the outputs
    against the spec, the Grad-CAM layer and the cascade blocks detected (or checked) with hooks.
    ``state``: weights already read (a checkpoint written by ``trust train``)."""
    if not isinstance(spec, ModelSpec):
        spec = read_spec(spec)
    where = spec.path or spec.source
    model = build_model(spec)
    adapted: list[str] = []
    known: dict = {}
    if state is None and spec.weights is not None:
        state = _state_dict_of(spec)
    if state is not None:
        state, known, notes = _set_aside_known_buffers(state, model, spec)
        adapted = notes + _fit_weights(model, state, spec)
    model.eval()
    prep = spec.preprocessing
    n_out = _output_count(model, prep, where)
    classes = spec.classes
    if classes is None and spec.kind == "torchxrayvision":
        classes = tuple(getattr(model, "pathologies", None) or _import("torchxrayvision", where).datasets.default_pathologies)
        classes = classes if len(classes) == n_out else None
    if classes is not None and len(classes) != n_out:
        raise _err(f"the spec lists {len(classes)} classes but the model has {n_out} outputs: fix [outputs] "
                   f"classes or num_classes", where)
    if spec.activation == "softmax" and n_out == 1:
        raise _err("a softmax head needs at least 2 outputs; this model has 1: set activation = \"sigmoid\"", where)
    target = _resolve_target(spec, classes, n_out, where)
    try:
        layer = spec.gradcam_layer or detect_gradcam_layer(model, prep)
    except ConfigError as exc:
        raise _err(exc.reason, where) from None
    check_gradcam_layer(model, prep, layer, where)
    if spec.cascade:
        for path in spec.cascade:
            _submodule(model, path, where, "cascade block")
        order = forward_order(model, _probe(model, prep), list(spec.cascade))
        unused = [p for p in spec.cascade if p not in order]
        if unused:
            raise _err(f"cascade blocks {unused} never run in a forward pass: list modules the model uses", where)
        blocks = tuple((p, (p,)) for p in reversed(order))
    elif spec.kind == "registry":
        blocks = info_of(model).blocks
    else:
        try:
            blocks = detect_blocks(model, prep)
        except ConfigError as exc:
            raise _err(exc.reason, where) from None
    arch = spec.source if spec.kind == "registry" else None
    if blocks is None:
        raise _err("no cascade blocks: list [cascade] blocks", where)
    resolved = {**spec.as_dict(), "gradcam_layer": layer, "cascade": [b[0] for b in blocks][::-1],
                "target_index": target, "classes": list(classes) if classes else None,
                "code": _code_identity(spec)}
    if spec.kind == "pt2":  # the program by name (its weights are in the fingerprint): a moved workspace still hits
        resolved["source"] = Path(spec.source).name
    fresh = None
    if spec.kind not in ("registry", "pt2"):
        from dataclasses import replace as _replace
        unweighted = _replace(spec, weights=None)
        fresh = lambda: build_model(unweighted).eval()  # noqa: E731 (a picklable-enough closure)
    tag(model, arch=arch, input_size=prep.size, preprocessing=prep, activation=spec.activation,
        classes=classes, target=target, gradcam_layer=layer, blocks=blocks, spec=resolved, fresh=fresh,
        path=str(spec.path) if spec.path else None,
        meta={"spec": resolved, "input_size": prep.size, **({"weights_adapted": adapted} if adapted else {}),
              **({"known_buffers": known} if known else {})})
    check_gradient(model, where)
    return model.to(device).eval()


def _code_identity(spec: ModelSpec) -> str | None:
    """What the model's code is, for the cache fingerprint: the zoo library's version, or a digest of a
    callable's module source (an edited forward must not be served yesterday's maps)."""
    import hashlib
    import inspect as pyinspect

    kind = spec.kind
    if kind in ("torchvision", "timm", "torchxrayvision", "monai"):
        module = importlib.import_module(kind)
        return f"{kind} {getattr(module, '__version__', '?')}"
    if kind == "callable":
        module = importlib.import_module(spec.source.partition(":")[0])
        try:
            source = pyinspect.getsource(module)
        except (OSError, TypeError):
            return None
        return "sha256:" + hashlib.sha256(source.encode()).hexdigest()[:16]
    return None


def _submodule(model: nn.Module, path: str, where, what: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n][-8:]
        raise _err(f"the model has no {what} {path!r} (its last modules: {names}; `trust inspect` lists them)",
                   where) from None


# -- detection -------------------------------------------------------------------------------------

def _record_outputs(model: nn.Module, prep: Preprocessing) -> list[tuple[str, tuple]]:
    """(module path, output shape) in the order modules *finish* during one forward pass."""
    done: list[tuple[str, tuple]] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            out = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(out, torch.Tensor):
                done.append((name, tuple(out.shape)))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model(_probe(model, prep))
    finally:
        for h in handles:
            h.remove()
    return done


def detect_gradcam_layer(model: nn.Module, prep: Preprocessing) -> str:
    """The last module whose output is a spatial feature map before global pooling.

    Convolutional networks: the module that finishes last with an (N, C, h, w) output, h·w > 1. Vision
    transformers (a ``blocks`` sequence of token blocks with ``norm1``): the last block's ``norm1``, the
    token map whose patch tokens still reach the class token (pytorch-grad-cam's recipe), reshaped to
    its grid by the engine."""
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) and hasattr(blocks[-1], "norm1"):
        return f"blocks.{len(blocks) - 1}.norm1"
    def spatial(shape) -> bool:  # (N, C, h, w) or channels-last (N, h, w, C), h = w > 1 (square inputs)
        return len(shape) == 4 and ((shape[2] == shape[3] > 1) or (shape[1] == shape[2] > 1))

    found = [name for name, shape in _record_outputs(model, prep) if spatial(shape)]
    if not found:
        raise ConfigError("no module of this model outputs a spatial feature map (N, C, h, w): name "
                          "gradcam_layer in the spec (`trust inspect` lists the modules)")
    return found[-1]


def check_gradcam_layer(model: nn.Module, prep: Preprocessing, layer: str, where=None) -> tuple:
    """The layer exists and gives a feature map (or a square token grid); returns its grid shape."""
    from ..saliency.engine import token_grid

    module = _submodule(model, layer, where, "Grad-CAM layer")
    shapes: list = []
    handle = module.register_forward_hook(
        lambda _m, _i, out: shapes.append(out[0] if isinstance(out, (tuple, list)) else out))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model(_probe(model, prep))
    finally:
        handle.remove()
    if not shapes:
        raise _err(f"the Grad-CAM layer {layer!r} does not run in a forward pass: choose a module the model uses",
                   where)
    out = shapes[-1]
    try:
        grid = token_grid(out)
    except ValueError:
        raise _err(f"the Grad-CAM layer {layer!r} outputs {tuple(out.shape)}, not a spatial feature map "
                   f"(N, C, h, w) or a square token grid: choose a convolutional block", where) from None
    if grid.shape[2] * grid.shape[3] < 2 and out.dim() == 4:
        raise _err(f"the Grad-CAM layer {layer!r} outputs a 1×1 map (after global pooling): choose the "
                   f"block before the pooling", where)
    return tuple(grid.shape[1:])


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _stages(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    return [(prefix + name, child) for name, child in module.named_children() if _has_params(child)]


def detect_blocks(model: nn.Module, prep: Preprocessing) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Cascade states: the model's top-level stages that hold parameters, top-down in reverse forward
    order (found with hooks; unused modules dropped). A model with fewer than 4 stages has its heaviest
    stage opened (torchvision's DenseNet is ``features`` + ``classifier``: its dense blocks become the
    stages), and a plain sequence of 4+ blocks holding most of the weights is opened too (a ViT's
    ``blocks``, an EfficientNet's stages)."""
    stages = _stages(model, "")
    while len(stages) < 4:
        openable = [(i, n, c) for i, (n, c) in enumerate(stages) if len(_stages(c, n + ".")) >= 2]
        if not openable:
            break
        i, name, child = max(openable, key=lambda t: sum(p.numel() for p in t[2].parameters()))
        stages[i:i + 1] = _stages(child, name + ".")
    total = sum(p.numel() for p in model.parameters())
    for i in range(len(stages) - 1, -1, -1):  # a plain sequence of many blocks holding most weights
        name, child = stages[i]
        inner = _stages(child, name + ".")
        if (type(child) in (nn.Sequential, nn.ModuleList) and len(inner) >= 4
                and sum(p.numel() for p in child.parameters()) > total / 2):
            stages[i:i + 1] = inner
    order = forward_order(model, _probe(model, prep), [n for n, _ in stages])
    if not order:
        raise ConfigError("no parameterized stage of this model runs in a forward pass: list [cascade] blocks")
    return tuple((p, (p,)) for p in reversed(order))


# -- inspection ------------------------------------------------------------------------------------

def describe(model: nn.Module) -> dict:
    """What ``trust inspect`` prints: input, outputs, Grad-CAM layer and map, cascade states with parameter
    counts, and a sanity check (one forward pass; a non-zero input gradient for the target)."""
    info = info_of(model)
    prep = info.prep
    logits, target, grad_norm = _input_gradient(model)
    states = []
    for name, paths in info.blocks or ():
        count = sum(p.numel() for path in paths for p in model.get_submodule(path).parameters())
        states.append({"state": name, "modules": list(paths), "parameters": int(count)})
    covered = {id(p) for _, paths in info.blocks or () for path in paths
               for p in model.get_submodule(path).parameters()}
    outside = [n for n, p in model.named_parameters() if id(p) not in covered]
    grid = check_gradcam_layer(model, prep, info.gradcam_layer) if info.gradcam_layer else None
    with torch.no_grad():
        activated = {"softmax": lambda v: torch.softmax(v, 1), "sigmoid": torch.sigmoid,
                     "logits": lambda v: v}[info.activation](logits.detach().float())
    from ..saliency.guided import guided_relus

    with torch.no_grad(), warnings.catch_warnings(), guided_relus() as guided:
        warnings.simplefilter("ignore")
        model(_probe(model, prep))
    raw = logits.detach().float()
    looks_activated = bool(((raw >= 0) & (raw <= 1)).all()) and raw.shape[1] > 0
    return {
        "source": info.name, "spec": info.spec, "input": {**prep.as_dict(), "label": prep.label},
        "outputs": {"count": int(logits.shape[1]), "activation": info.activation,
                    "classes": list(info.classes) if info.classes else None},
        "target": {"index": info.target, "name": info.class_name(target) if info.target is not None else None,
                   "rule": "the spec's target" if info.target is not None else "the predicted class"},
        "gradcam": {"layer": info.gradcam_layer, "feature_map": list(grid) if grid else None},
        "cascade": states, "not_randomized": outside,
        "guided_relus": guided.calls,  # 0: no ReLU (GELU, SiLU…), Guided Backprop is the plain gradient
        "outputs_in_0_1": looks_activated,  # every output in [0, 1]: maybe probabilities, not logits
        "warnings": _normalization_warnings(model),  # the normalization against what the model's zoo expects
        "sanity": {"forward": bool(torch.isfinite(logits).all()), "probe_target": target,
                   "probe_score": float(activated[0, target]), "input_gradient_l1": grad_norm,
                   "ok": bool(torch.isfinite(logits).all()) and math.isfinite(grad_norm) and grad_norm > 0},
    }


def _normalization_warnings(model: nn.Module) -> list[str]:
    from .sanity import normalization_warnings

    return normalization_warnings(model)


def _input_gradient(model: nn.Module) -> tuple[torch.Tensor, int, float]:
    """One forward and backward on the probe film: (logits, target, L1 norm of the target's input
    gradient; NaN when the output does not depend on the input through autograd)."""
    info = info_of(model)
    x = _probe(model, info.prep).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logits = model(x)
    target = info.target if info.target is not None else int(logits.detach().argmax(1)[0])
    try:
        (grad,) = torch.autograd.grad(logits[0, target], x, allow_unused=True)
        grad_norm = float(grad.abs().sum()) if grad is not None else float("nan")
    except RuntimeError:  # no_grad or detach inside forward
        grad_norm = float("nan")
    return logits, target, grad_norm


def check_gradient(model: nn.Module, where=None) -> None:
    """Refuse a model whose target logit has a zero or missing gradient with respect to its input (one
    forward and backward; ``describe`` reports the same check among the rest)."""
    logits, _target, value = _input_gradient(model)
    if not (bool(torch.isfinite(logits).all()) and math.isfinite(value) and value > 0):
        state = "missing" if value != value else ("zero" if value == 0 else "not finite")
        raise _err(f"the target's gradient with respect to the input is {state}: saliency maps would be blank. "
                   f"Does forward detach the input or run under torch.no_grad(), or is the target output "
                   f"constant? Fix the model's forward (or choose another target)", where)


# -- writing ---------------------------------------------------------------------------------------

def to_toml(table: dict) -> str:
    """A spec table as TOML (top-level values, then one level of sub-tables), readable by tomllib."""
    import json

    def value(v):
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, dict):  # an inline table ({mean = [...], std = [...]})
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)  # strings (JSON escapes are TOML basic-string escapes), numbers

    lines = [f"{k} = {value(v)}" for k, v in table.items() if not isinstance(v, dict) and v is not None]
    for k, v in table.items():
        if isinstance(v, dict) and v:
            lines += ["", f"[{k}]"] + [f"{kk} = {value(vv)}" for kk, vv in v.items() if vv is not None]
    return "\n".join(lines) + "\n"


_SAFE_NAME = __import__("re").compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


ZOO_KINDS = ("registry", "torchvision", "timm", "torchxrayvision", "monai")  # build models, run no user code


def add_model(folder: str | Path, name: str, table: dict, *, weights: bytes | None = None,
              weights_name: str | None = None, allow_code: bool = False) -> Path:
    """Add a model to a workspace's ``models/`` folder: ``<name>.toml`` (+ its weights file), written only
    after the spec loads and passes its sanity check from a private staging folder, so that a bad spec
    or bad weights leave nothing behind. Returns the spec's path.

    Without ``allow_code`` (the app: its users are not the server's owners) only the zoos' builders are
    accepted: a ``package.module:callable`` source imports and runs any Python function, and a ``.pt2``
    names a file on the server; such specs are written beside the weights by whoever runs the server."""
    import os
    import shutil
    import tempfile

    folder = Path(folder)
    if not _SAFE_NAME.match(name or ""):
        raise ConfigError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (no spaces or slashes)")
    target = folder / f"{name}.toml"
    if target.exists():
        raise ConfigError(f"a model named {name!r} exists already: choose another name", path=target)
    table = {k: v for k, v in table.items() if v not in (None, {}, [], "")}
    kind = source_kind(str(table.get("source", "")))
    if not allow_code and kind not in ZOO_KINDS:
        raise ConfigError(f"source {table.get('source')!r}: models added here come from the zoos ({', '.join(ZOO_KINDS)}); "
                          f"a package.module:callable or .pt2 source runs code on the server, so write its spec "
                          f"into the workspace's models/ folder yourself (README 'Bring your own model')")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".staging-") as staging:
        staging = Path(staging)
        if weights is not None:
            suffix = Path(weights_name or "weights.pth").suffix.lower()
            if suffix not in (".pt", ".pth", ".safetensors", ".bin", ".ckpt", ".tar"):
                raise ConfigError(f"weights {weights_name!r}: upload a .pt, .pth, .pth.tar or .safetensors file")
            stored = f"{name}{suffix}"
            if (folder / stored).exists():
                raise ConfigError(f"a weights file {stored!r} exists already: choose another name", path=folder)
            (staging / stored).write_bytes(weights)
            table["weights"] = stored
        (staging / target.name).write_text(to_toml(table), encoding="utf-8")
        try:
            load_spec(staging / target.name)  # raises with the reason; the staging folder is removed
        except (ConfigError, CheckpointError) as exc:
            if weights is not None and exc.path and Path(exc.path).name == table["weights"]:
                raise type(exc)(exc.reason, path=weights_name) from None  # name the file the user gave
            raise
        if weights is not None:
            os.replace(staging / table["weights"], folder / table["weights"])
        os.replace(staging / target.name, target)
        shutil.rmtree(staging, ignore_errors=True)
    return target
