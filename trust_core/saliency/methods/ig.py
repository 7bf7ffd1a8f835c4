"""Integrated Gradients (Sundararajan et al. 2017): Riemann sum over α = linspace(0, 1, steps), both ends,
from a constant baseline; its α = 1 step is the plain pass."""
import torch

from .base import Method


def plan(run):
    run.use_plain()
    return {i: run.integration(run.params["ig_steps"], i, i, run.ig_baseline, True) for i in range(run.n)}


def assemble(run, out, paths):
    x, plain = run.x, run.plain
    return torch.stack([
        (x[i] - run.ig_baseline) * (out.sums[p] + (out.endpoints[plain[i]] if shared else 0)) / run.params["ig_steps"]
        for i, (p, shared) in paths.items()])


METHOD = Method(
    "ig", "Integrated Gradients", "Sundararajan et al., ICML 2017",
    "Riemann sum over α = linspace(0, 1, steps), both ends, from a constant baseline",
    ("ig_steps", "ig_baseline"), plain=True, passes="ig_steps − 1", cost=lambda p: p["ig_steps"] - 1, plan=plan, assemble=assemble)
