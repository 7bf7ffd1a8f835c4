"""Integrated Gradients (Sundararajan et al. 2017): Riemann sum over α = linspace(0, 1, steps), both ends,
from a constant baseline; its α = 1 step is the plain pass."""
import torch

from .base import Method


def plan(ctx):
    ctx.use_plain()
    return {i: ctx.integration(ctx.params["ig_steps"], i, i, ctx.ig_baseline, True) for i in range(ctx.n)}


def assemble(ctx, out, paths):
    x, plain = ctx.x, ctx.plain
    return torch.stack([
        (x[i] - ctx.ig_baseline) * (out.sums[p] + (out.endpoints[plain[i]] if shared else 0)) / ctx.params["ig_steps"]
        for i, (p, shared) in paths.items()])


METHOD = Method(
    "ig", "Integrated Gradients", "Sundararajan et al., ICML 2017",
    "Riemann sum over α = linspace(0, 1, steps), both ends, from a constant baseline",
    ("ig_steps", "ig_baseline"), plain=True, passes="ig_steps − 1", cost=lambda p: p["ig_steps"] - 1, plan=plan, assemble=assemble)
