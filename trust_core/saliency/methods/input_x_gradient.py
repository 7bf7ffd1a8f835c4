"""Input × Gradient (Shrikumar et al. 2016): the input times ∂ logit / ∂ input, from the plain pass (no pass
of its own). captum's ``InputXGradient`` is its oracle."""
import torch

from ...sets import EXTENDED_SET
from .base import Method


def plan(run):
    return run.use_plain()


def assemble(run, out, plain):
    return run.x * torch.stack([out.endpoints[plain[i]] for i in range(run.n)])


METHOD = Method(
    "input_x_gradient", "Input × Gradient", "Shrikumar et al., arXiv:1605.01713, 2016",
    "input ⊙ ∂ logit / ∂ input", group=EXTENDED_SET, plain=True, passes="0 (reuses grad's pass)",
    cost=lambda p: 0, plan=plan, assemble=assemble)
