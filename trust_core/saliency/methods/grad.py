"""Gradient (Simonyan et al. 2014): ∂ logit / ∂ input, the plain pass itself."""
from .base import Method


def plan(run):
    return run.use_plain()


def assemble(run, out, plain):
    import torch
    return torch.stack([out.endpoints[plain[i]] for i in range(run.n)])


METHOD = Method(
    "grad", "Gradient", "Simonyan et al., ICLR workshop 2014", "∂ logit / ∂ input",
    plain=True, passes="1 (shared with IG's α = 1 step)", cost=lambda p: 0, plan=plan, assemble=assemble)
