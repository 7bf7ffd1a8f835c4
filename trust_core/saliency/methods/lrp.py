"""Layer-wise Relevance Propagation (Bach et al. 2015; Montavon et al. 2019) with zennit's composites.

The relevance of the target logit (one-hot, as zennit's ``Gradient`` attributor starts) is propagated by
rules attached to the model's modules for one pass (forward hooks, removed afterwards):

* ``epsilon_plus_flat`` (default; zennit's recommendation for CNNs): the first linear layer (convolution
  or fully connected, in module order) the flat rule, every other convolution z⁺ (α1β0), every fully
  connected layer ε;
* ``epsilon_alpha2_beta1``: convolutions α2β1, fully connected ε;
* ``epsilon_plus``: convolutions z⁺, fully connected ε;

and in each: activation and batch-norm modules pass relevance through unchanged, average pooling the norm
rule; ε = stabilizer = 1e-6, added with the sign of the denominator (+ for 0). As in zennit without
canonizers, functional operations (``F.relu``, ``x.mean``, residual sums) keep their plain gradients.
zennit's composites are its oracle. One pass per image."""
from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..engine import autocast, fp32_mode
from ...sets import EXTENDED_SET
from .base import Method

EPSILON = STABILIZER = 1e-6  # zennit's defaults
COMPOSITES = ("epsilon_plus_flat", "epsilon_alpha2_beta1", "epsilon_plus")
ACTIVATIONS = (nn.ELU, nn.Hardshrink, nn.Hardsigmoid, nn.Hardtanh, nn.Hardswish, nn.LeakyReLU, nn.LogSigmoid, nn.PReLU,
               nn.ReLU, nn.ReLU6, nn.RReLU, nn.SELU, nn.CELU, nn.GELU, nn.Sigmoid, nn.SiLU, nn.Softplus, nn.Softshrink,
               nn.Softsign, nn.Tanh, nn.Tanhshrink, nn.Threshold)  # zennit's Activation types (less attention)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
AVGPOOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
LINEARS = CONVOLUTIONS + (nn.Linear,)


def stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """z + ε · sign(z), with sign(0) = +1 (zennit's ``stabilize``)."""
    return z + ((z == 0).to(z) + z.sign()) * epsilon


def _forward(module: nn.Module, x: torch.Tensor, weight=None, bias=None) -> torch.Tensor:
    """A linear module's output with replaced parameters (functional: the module is not modified)."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, bias)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return module._conv_forward(x, weight, bias)
    kind = {nn.ConvTranspose1d: F.conv_transpose1d, nn.ConvTranspose2d: F.conv_transpose2d,
            nn.ConvTranspose3d: F.conv_transpose3d}[type(module)]
    return kind(x, weight, bias, module.stride, module.padding, module.output_padding, module.groups,
                module.dilation)


_RULE = threading.local()  # set while a rule runs a module itself: the hooks stand aside


def _basic(module, x, grad, variants, mapper, reducer):
    """zennit's BasicHook: outputs of modified copies (input modifier, parameters), their gradients under the
    mapped upper gradient, reduced to the relevance of the input."""
    inputs, outputs = [], []
    _RULE.active = True
    try:
        return _reduce(module, x, grad, variants, mapper, reducer, inputs, outputs)
    finally:
        _RULE.active = False


def _reduce(module, x, grad, variants, mapper, reducer, inputs, outputs):
    with torch.enable_grad():
        for modify_input, params in variants:
            xi = modify_input(x).requires_grad_(True)
            inputs.append(xi)
            outputs.append(module(xi) if params is None else _forward(module, xi, *params))
        gradients = torch.autograd.grad(outputs, inputs, grad_outputs=mapper(grad, outputs))
    return reducer(inputs, gradients)


def _params(module, weight_fn, bias_fn):
    bias = module.bias
    return weight_fn(module.weight), (None if bias is None else bias_fn(bias))


def _zero(t):
    return torch.zeros_like(t)


def epsilon_rule(module, x, grad):
    return _basic(module, x, grad, [(lambda t: t, (module.weight, module.bias))],
                  lambda g, outs: [g / stabilize(outs[0], EPSILON)], lambda xs, gs: xs[0] * gs[0])


def zplus_rule(module, x, grad):
    variants = [(lambda t: t.clamp(min=0), _params(module, lambda w: w.clamp(min=0), lambda b: b.clamp(min=0))),
                (lambda t: t.clamp(max=0), _params(module, lambda w: w.clamp(max=0), _zero))]
    return _basic(module, x, grad, variants, lambda g, outs: [g / stabilize(sum(outs), STABILIZER)] * 2,
                  lambda xs, gs: xs[0] * gs[0] + xs[1] * gs[1])


def alpha2_beta1_rule(module, x, grad, alpha=2.0, beta=1.0):
    positive, negative = (lambda t: t.clamp(min=0)), (lambda t: t.clamp(max=0))
    variants = [(positive, _params(module, lambda w: w.clamp(min=0), lambda b: b.clamp(min=0))),
                (negative, _params(module, lambda w: w.clamp(max=0), _zero)),
                (positive, _params(module, lambda w: w.clamp(max=0), lambda b: b.clamp(max=0))),
                (negative, _params(module, lambda w: w.clamp(min=0), _zero))]

    def mapper(g, outs):
        return [g / stabilize(d, STABILIZER) for d in [outs[0] + outs[1]] * 2 + [outs[2] + outs[3]] * 2]
    return _basic(module, x, grad, variants, mapper,
                  lambda xs, gs: alpha * (xs[0] * gs[0] + xs[1] * gs[1]) - beta * (xs[2] * gs[2] + xs[3] * gs[3]))


def flat_rule(module, x, grad):
    variants = [(torch.ones_like, _params(module, torch.ones_like, _zero))]
    return _basic(module, x, grad, variants, lambda g, outs: [g / stabilize(outs[0], STABILIZER)],
                  lambda xs, gs: gs[0])


def norm_rule(module, x, grad):
    return _basic(module, x, grad, [(lambda t: t, None)], lambda g, outs: [g / stabilize(outs[0], STABILIZER)],
                  lambda xs, gs: xs[0] * gs[0])


def pass_rule(module, x, grad):
    return grad


def rules(model: nn.Module, composite: str) -> dict[nn.Module, object]:
    """Module → rule under a composite (zennit's layer maps, first match wins)."""
    if composite not in COMPOSITES:
        raise ConfigError(f"unknown LRP composite {composite!r}; choose one of {COMPOSITES}")
    conv = {"epsilon_plus_flat": zplus_rule, "epsilon_plus": zplus_rule,
            "epsilon_alpha2_beta1": alpha2_beta1_rule}[composite]
    out, first = {}, composite == "epsilon_plus_flat"
    for module in model.modules():
        if first and isinstance(module, LINEARS):
            out[module], first = flat_rule, False
        elif isinstance(module, ACTIVATIONS + BATCHNORMS):
            out[module] = pass_rule
        elif isinstance(module, AVGPOOLS):
            out[module] = norm_rule
        elif isinstance(module, CONVOLUTIONS):
            out[module] = conv
        elif isinstance(module, nn.Linear):
            out[module] = epsilon_rule
    return out


class _Relevance(torch.autograd.Function):
    """The module's own output forward; its rule backward (relevance of its input)."""

    @staticmethod
    def forward(ctx, x, out, module, rule):
        ctx.module, ctx.rule = module, rule
        ctx.save_for_backward(x)
        return out.clone()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return ctx.rule(ctx.module, x.detach(), grad), None, None, None


def relevance(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, composite: str = "epsilon_plus_flat", *,
              device=None, precision: str = "fp32") -> torch.Tensor:
    """LRP relevance (N, C, H, W) of the target logits of images ``x``."""
    device = device or x.device
    handles = []
    owner = threading.get_ident()  # hooks act in this thread only: a concurrent forward elsewhere is untouched
    for module, rule in rules(model, composite).items():
        entered: list[torch.Tensor] = []  # a module may run more than once per forward (ResNet's ReLU)

        def enter(mod, inputs, entered=entered):
            if threading.get_ident() != owner or getattr(_RULE, "active", False):
                return None
            if not inputs or not isinstance(inputs[0], torch.Tensor) or not inputs[0].requires_grad:
                entered.append(None)
                return None
            entered.append(inputs[0])  # the module runs on a copy: an in-place ReLU must not change it
            return (inputs[0].clone(), *inputs[1:])

        def leave(mod, inputs, out, rule=rule, entered=entered):
            if threading.get_ident() != owner or getattr(_RULE, "active", False):
                return None
            x = entered.pop() if entered else None
            if x is None or not isinstance(out, torch.Tensor):
                return None
            return _Relevance.apply(x, out, mod, rule)
        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        leaf = x.detach().clone().requires_grad_(True)
        with fp32_mode(device, precision), torch.enable_grad(), autocast(device, precision):
            logits = model(leaf)
        one_hot = torch.zeros_like(logits).scatter_(1, targets.view(-1, 1).to(logits.device), 1.0)
        return torch.autograd.grad(logits, leaf, grad_outputs=one_hot)[0].float()
    finally:
        for handle in handles:
            handle.remove()


def assemble(run, out, _planned):
    targets = run.targets.to(run.x.device)
    step = max(1, run.batch_size)
    maps = [relevance(run.model, run.x[i:i + step], targets[i:i + step], run.params["lrp_composite"], device=run.device,
                      precision=run.precision) for i in range(0, run.n, step)]
    run.passes += run.n
    return torch.cat(maps)


METHOD = Method(
    "lrp", "LRP", "Bach et al., PLoS ONE 2015; Montavon et al. 2019 (zennit composites)",
    "relevance of the target logit propagated by ε / z⁺ / α2β1 / flat rules (lrp_composite)",
    ("lrp_composite",), group=EXTENDED_SET, passes="1 per image (a modified backward)",
    defaults={"lrp_composite": "epsilon_plus_flat"}, choices={"lrp_composite": COMPOSITES},
    cost=lambda p: 1, plan=lambda run: None, assemble=assemble)
