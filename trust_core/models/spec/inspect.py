"""Inspection: what ``trust inspect`` says of a model, and the check that its input gradient flows."""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..info import info_of
from .detect import check_gradcam_layer, _probe
from .schema import _err


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
    from ...saliency.guided import guided_relus

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
    from ..sanity import normalization_warnings

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
