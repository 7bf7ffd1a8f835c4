"""Saving and safely loading classifier checkpoints (``weights_only=True`` always)."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import atomic_path
from .info import tag
from .registry import build, get_architecture

FORMAT = "trust-checkpoint"
VERSION = 1


def save(model: nn.Module, path: str | Path, *, arch: str, meta: dict | None = None) -> Path:
    """Write a checkpoint atomically: weights + architecture + JSON-able metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    num_classes = _num_classes(model)
    payload = {"format": FORMAT, "version": VERSION, "arch": arch, "num_classes": num_classes,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "meta": dict(meta or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _num_classes(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return int(linears[-1].out_features) if linears else None


def _strip_prefixes(state: dict) -> dict:
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, loaded with ``weights_only=True`` and with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path=path)
    if path.stat().st_size == 0:
        raise CheckpointError("the checkpoint file is empty (0 bytes)", path=path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not any(marker in str(exc) for marker in ("GLOBAL", "Unsupported global", "Unsupported class")):
            raise CheckpointError(f"the checkpoint is corrupt or not a PyTorch file and cannot be read "
                                  f"({str(exc).splitlines()[-1][:200]})", path=path) from None
        raise CheckpointError(
            "the checkpoint holds Python objects or code besides tensors, and is refused for safety "
            "(loaded with weights_only=True). Re-save it from trusted code with "
            f"torch.save(model.state_dict(), path). Detail: {_unsupported(exc)}",
            path=path) from None
    except Exception as exc:  # torch.load fails in many ways on files that are not checkpoints
        raise CheckpointError(f"the checkpoint is corrupt or truncated and cannot be read "
                              f"({type(exc).__name__}: {str(exc)[:200]})", path=path) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"expected a state_dict or a checkpoint dict, found {type(payload).__name__}",
                              path=path)
    return payload


def _unsupported(exc: Exception) -> str:
    """The line of torch's weights-only error that names the refused global."""
    lines = [line.strip() for line in str(exc).splitlines() if "Unsupported" in line]
    return (lines[0] if lines else str(exc).splitlines()[0])[:200]


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
    payload = read_checkpoint(path)
    if payload.get("format") == FORMAT:
        saved_arch, state, meta = payload["arch"], payload["state_dict"], dict(payload.get("meta", {}))
        if arch is not None and arch != saved_arch:
            raise CheckpointError(f"this checkpoint is a {saved_arch!r} model, not {arch!r}", path=path)
        arch = saved_arch
    else:
        state = payload.get("state_dict", payload)
        meta = {}
        if arch is None:
            raise CheckpointError("a bare state_dict does not say its architecture: pass arch= "
                                  "(one of the registry's names)", path=path)
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
