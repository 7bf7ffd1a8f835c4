"""Loading a spec: its weights fitted to the architecture (``weights_only`` / safetensors; wrapper prefixes
stripped, known buffers set aside), its outputs and target resolved, its layers checked."""
from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from ...errors import CheckpointError, ConfigError
from ..info import info_of, tag
from ..registry import forward_order
from ..preprocessing import Preprocessing
from .builders import build_model, _import
from .detect import check_gradcam_layer, detect_blocks, detect_gradcam_layer, _probe, _submodule
from .inspect import check_gradient
from .schema import ModelSpec, read_spec, _err


def _state_dict_of(spec: ModelSpec) -> dict:
    """The weights file's tensors, safely (weights_only / safetensors), wrapper prefixes stripped."""
    from ..weights import FORMAT, _strip_prefixes, read_checkpoint

    from ..weights import file_format

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
    known = KNOWN_BUFFERS.get(spec.source_kind, {})
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
    if classes is None and spec.source_kind == "torchxrayvision":
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
    elif spec.source_kind == "registry":
        blocks = info_of(model).blocks
    else:
        try:
            blocks = detect_blocks(model, prep)
        except ConfigError as exc:
            raise _err(exc.reason, where) from None
    arch = spec.source if spec.source_kind == "registry" else None
    if blocks is None:
        raise _err("no cascade blocks: list [cascade] blocks", where)
    resolved = {**spec.as_dict(), "gradcam_layer": layer, "cascade": [b[0] for b in blocks][::-1],
                "target_index": target, "classes": list(classes) if classes else None,
                "code": _code_identity(spec)}
    if spec.source_kind == "pt2":  # the program by name (its weights are in the fingerprint): a moved workspace still hits
        resolved["source"] = Path(spec.source).name
    fresh = None
    if spec.source_kind not in ("registry", "pt2"):
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

    zoo = spec.source_kind
    if zoo in ("torchvision", "timm", "torchxrayvision", "monai"):
        module = importlib.import_module(zoo)
        return f"{zoo} {getattr(module, '__version__', '?')}"
    if zoo == "callable":
        module = importlib.import_module(spec.source.partition(":")[0])
        try:
            source = pyinspect.getsource(module)
        except (OSError, TypeError):
            return None
        return "sha256:" + hashlib.sha256(source.encode()).hexdigest()[:16]
    return None


