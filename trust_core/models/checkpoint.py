"""Saving and safely loading classifier checkpoints (``weights_only=True`` always)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import atomic_path
from .info import info_of, tag
from .registry import LOCALIZERS, build, get_architecture
from .weights import FORMAT, VERSION, _strip_prefixes, read_checkpoint  # noqa: F401 (re-exported)


def save(model: nn.Module, path: str | Path, *, arch: str | None, meta: dict | None = None,
         spec: dict | None = None) -> Path:
    """Write a checkpoint atomically: weights + architecture (a registry name, or the model ``spec`` of
    a spec'd model, without its weights file) + JSON-able metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    num_classes = _num_classes(model)
    payload = {"format": FORMAT, "version": VERSION, "arch": arch, "num_classes": num_classes,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "meta": dict(meta or {})}
    if spec is not None:
        payload["spec"] = {k: v for k, v in spec.items() if k not in ("weights", "target_index")}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _num_classes(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return int(linears[-1].out_features) if linears else None


def load(path: str | Path, *, arch: str | None = None, num_classes: int | None = None,
         device: str | torch.device = "cpu") -> nn.Module:
    """Load a classifier from a checkpoint (ours, or a bare / wrapped ``state_dict``).

    Parameters
    ----------
    path : checkpoint file.
    arch : architecture name; required for bare state_dicts, checked against ours.
    num_classes : expected number of classes; checked when given.

    Returns
    -------
    nn.Module in eval mode, described by its :class:`~trust_core.models.info.ModelInfo` (``info_of``).

    Raises
    ------
    CheckpointError
        Missing, empty, truncated or code-carrying files; a checkpoint of another architecture or
        with another number of classes.
    """
    from .spec import ModelSpec

    if isinstance(path, ModelSpec):  # a spec given as flags (the CLI) or built in Python
        from .spec import load_spec
        return load_spec(path, device=device)
    suffix = Path(path).suffix.lower()
    if suffix == ".toml":  # a model spec (any architecture; see trust_core.models.spec)
        from .spec import load_spec
        return load_spec(path, device=device)
    if suffix == ".pt2":  # a torch.export program without a spec: the paper's preprocessing at its input size
        from .spec import exported_spec, load_spec
        return load_spec(exported_spec(path), device=device)
    payload = read_checkpoint(path)
    if payload.get("format") == FORMAT and payload.get("spec"):  # trained by `trust train` from a spec
        from .spec import load_spec, spec_from_dict
        saved = {k: v for k, v in payload["spec"].items() if k in ("source", "source_kwargs", "target",
                                                                   "gradcam_layer", "name")}
        saved["preprocessing"] = {k: v for k, v in payload["spec"]["preprocessing"].items()
                                  if k in ("size", "channels", "resize")}
        prep = payload["spec"]["preprocessing"]
        saved["preprocessing"]["normalization"] = (prep["normalization"] if prep["normalization"] != "custom"
                                                   else {"mean": prep["mean"], "std": prep["std"]})
        saved["outputs"] = {"activation": payload["spec"]["activation"]}
        if payload["spec"].get("classes"):
            saved["outputs"]["classes"] = payload["spec"]["classes"]
        if payload["spec"].get("cascade"):
            saved["cascade"] = {"blocks": payload["spec"]["cascade"]}
        saved = {k: v for k, v in saved.items() if v is not None}
        model = load_spec(spec_from_dict(saved, base=Path(path).parent), device=device,
                          state=_strip_prefixes(payload["state_dict"]))
        return tag(model, meta={**dict(payload.get("meta", {})), "spec": info_of(model).spec}, path=str(path))
    if payload.get("format") == FORMAT:
        saved_arch, state, meta = payload["arch"], payload["state_dict"], dict(payload.get("meta", {}))
        if arch is not None and arch != saved_arch:
            raise CheckpointError(f"this checkpoint is a {saved_arch!r} model, not {arch!r}", path=path)
        if arch is None and saved_arch in LOCALIZERS:  # a classifier was asked for
            raise CheckpointError(f"this checkpoint is a localizer ({saved_arch!r}: the high localization baseline, "
                                  f"made by `trust train-localizer`), not a classifier: give it as --localizer, and "
                                  f"a classifier as --model", path=path)
        arch = saved_arch
    else:
        state = payload.get("state_dict", payload)
        meta = {}
        if arch is None:
            raise CheckpointError("a bare state_dict does not say its architecture: write a model spec "
                                  "(a .toml beside it: source = \"torchvision:densenet121\", weights = "
                                  f"\"{Path(path).name}\"; README 'Bring your own model'), or pass --source "
                                  "on the command line (arch= in Python)", path=path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("the checkpoint's state_dict does not map names to tensors", path=path)
    state = _strip_prefixes(state)
    spec = get_architecture(arch)
    linear_weights = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    saved_classes = int(linear_weights[-1].shape[0]) if linear_weights else None
    if num_classes is not None and saved_classes is not None and saved_classes != num_classes:
        hint = (" (the datasets here are binary — 0 normal, 1 finding — so the classifier needs 2 "
                "outputs)" if num_classes == 2 else "")
        raise CheckpointError(f"the checkpoint's classifier has {saved_classes} outputs, expected "
                              f"{num_classes}{hint}", path=path)
    model = build(spec.name, num_classes=saved_classes or num_classes or 2)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                  for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"these weights do not fit the {spec.name!r} architecture: {len(missing)} "
            f"missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(mismatched)} of another shape "
            f"(e.g. {mismatched[:2]}). Was it trained with another architecture?", path=path)
    model.load_state_dict(state)
    tag(model, meta=meta, path=str(path), input_size=meta.get("input_size") or spec.input_size)
    return model.to(device).eval()
