"""Guided Backprop (Springenberg et al. 2015): every ReLU passes gradient only where gradient and
activation are positive (guided rows share the engine's chunks, see ``guided.py``)."""
import torch

from .base import Method


def plan(run):
    return {i: run.paths.add(end_index=i, image=i, alphas=[1.0], guided=True) for i in range(run.n)}


def assemble(run, out, paths):
    return torch.stack([out.endpoints[paths[i]] for i in range(run.n)])


METHOD = Method(
    "gbp", "Guided Backprop", "Springenberg et al., ICLR workshop 2015",
    "every ReLU passes gradient only where gradient and activation are positive", passes="1",
    cost=lambda p: 1, plan=plan, assemble=assemble)
