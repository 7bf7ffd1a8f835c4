"""Model-parameter randomization (Adebayo et al., NeurIPS 2018; protocol.md section 4).

:func:`cascade` yields ``(state_name, model)`` pairs: state 0 is the original; in ``cascading`` mode each
next state re-initializes one more block, top-down from the logits, in **forward order**, following the
architecture's block list in the registry (modules unused at inference are never listed); in
``independent`` mode each state re-initializes one block of the original only. Every yielded model is a
fresh copy — the input model is never mutated — whose :class:`ModelInfo` carries its ``state`` (mode, init, blocks and the
distinct seed of each), which is part of its cache fingerprint.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models.info import info_of, tag
from ..models.registry import get_architecture, get_module

MODES = ("cascading", "independent")
INITS = ("reset", "truncated_normal")


@dataclass(frozen=True)
class State:
    index: int
    name: str
    blocks: tuple[str, ...]  # state names re-initialized so far (cascading) or this one (independent)
    seeds: tuple[int, ...]


def block_seed(seed: int, index: int) -> int:
    """A distinct, recorded seed per block (SeedSequence spawn, not seed + index)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


def reinitialize(module: nn.Module, *, init: str = "reset", seed: int = 0) -> None:
    """Re-initialize every parameterized submodule of ``module`` in place, under ``seed``.

    ``reset``: each submodule's own ``reset_parameters()`` (BatchNorm running statistics included).
    ``truncated_normal``: weights ~ N(0, 0.01²) truncated at ±2σ, biases 0, BatchNorm γ=1, β=0 and
    running statistics reset (as Adebayo et al.'s TensorFlow code).
    """
    if init not in INITS:
        raise ConfigError(f"unknown re-initialization {init!r}; choose one of {INITS}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            for sub in module.modules():
                if init == "reset":
                    if hasattr(sub, "reset_parameters"):
                        sub.reset_parameters()
                    elif isinstance(sub, nn.modules.batchnorm._NormBase):
                        sub.reset_running_stats()
                    else:
                        _default_reset(sub)
                    continue
                if isinstance(sub, nn.modules.batchnorm._NormBase):
                    sub.reset_parameters()
                    continue
                for name, param in sub.named_parameters(recurse=False):
                    if name == "bias":
                        param.zero_()
                    else:
                        nn.init.trunc_normal_(param, mean=0.0, std=0.01, a=-0.02, b=0.02)


def _default_reset(module: nn.Module) -> None:
    """PyTorch's default initialization for a module without ``reset_parameters`` that holds parameters
    directly (the modules of an exported ``.pt2`` program): weights of 2+ dims Kaiming-uniform with
    a = √5 and biases U(±1/√fan_in) as ``nn.Linear``/``nn.Conv2d``; other 1-D parameters 1 (scales) and
    biases 0 as the normalization layers; running statistics 0 and 1."""
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight")
    for name, param in params.items():
        if param.dim() >= 2:
            nn.init.kaiming_uniform_(param, a=5 ** 0.5)
        elif name == "bias" and weight is not None and weight.dim() >= 2:
            fan_in = weight[0].numel()
            bound = 1 / fan_in ** 0.5 if fan_in > 0 else 0
            nn.init.uniform_(param, -bound, bound)
        elif name == "bias":
            nn.init.zeros_(param)
        else:  # a normalization's weight, a layer scale (ConvNeXt's gamma): 1, never 0 (0 would make the
            nn.init.ones_(param)  # block an identity and its other weights irrelevant)
    for name, buffer in module.named_buffers(recurse=False):
        if name.endswith("running_mean") or name.endswith("num_batches_tracked"):
            buffer.zero_()
        elif name.endswith("running_var"):
            buffer.fill_(1)


def _blocks(source) -> tuple:
    """The cascade blocks of a registry name or of a model (its registry entry or its spec)."""
    if isinstance(source, str):
        return get_architecture(source).blocks
    blocks = info_of(source).blocks
    if not blocks:
        raise ConfigError("randomization needs the model's cascade blocks: load it from the registry or "
                          "a model spec (trust_core.models.load), or list [cascade] blocks in its spec")
    return blocks


def model_seed(model: nn.Module, base_seed: int = 0) -> int:
    """The cascade seed of a model: the base seed offset by the model's training seed, so replicates
    (trained with different seeds) are randomized with different, reproducible seeds."""
    return int(base_seed) + info_of(model).seed


def states(source, *, mode: str = "cascading", seed: int = 0) -> list[State]:
    """The states a cascade visits, with their seeds, for a registry name or a model."""
    if mode not in MODES:
        raise ConfigError(f"unknown randomization mode {mode!r}; choose one of {MODES}")
    blocks = _blocks(source)
    out = [State(0, "original", (), ())]
    for k, (name, _paths) in enumerate(blocks, start=1):
        if mode == "cascading":
            out.append(State(k, name, tuple(b[0] for b in blocks[:k]),
                             tuple(block_seed(seed, j) for j in range(1, k + 1))))
        else:
            out.append(State(k, name, (name,), (block_seed(seed, k),)))
    return out


def cascade(model: nn.Module, *, arch: str | None = None, mode: str = "cascading", init: str = "reset",
            seed: int = 0, include_original: bool = True) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(state_name, model_copy)`` for each randomization state (see module docstring)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"cascade needs a torch.nn.Module, got {type(model).__name__}")
    blocks = get_architecture(arch).blocks if arch else _blocks(model)
    if init not in INITS:
        raise ConfigError(f"unknown re-initialization {init!r}; choose one of {INITS}")
    plan = states(arch or model, mode=mode, seed=seed)
    base_state = info_of(model).state
    working = copy.deepcopy(model)
    for state in plan:
        if state.index == 0:  # the model as loaded, untagged: one cache identity whoever loads it (the
            if include_original:  # evaluation, the app, `trust maps`, reports, Ray workers)
                yield state.name, copy.deepcopy(model).eval()
            continue
        target = working if mode == "cascading" else copy.deepcopy(model)
        paths = blocks[state.index - 1][1]
        fresh = info_of(model).fresh
        if init == "reset" and fresh is not None:  # a spec'd model: its library's own initialization
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(state.seeds[-1])
                donor = fresh()
            with torch.no_grad():
                for path in paths:
                    get_module(target, path).load_state_dict(get_module(donor, path).state_dict())
        else:
            for path in paths:
                reinitialize(get_module(target, path), init=init, seed=state.seeds[-1])
        yield state.name, _tagged(copy.deepcopy(target), state, mode, init, seed, base_state)


def _tagged(model: nn.Module, state: State, mode: str, init: str, seed: int, base_state) -> nn.Module:
    return tag(model, state={"randomization": mode, "init": init, "seed": seed, "state": state.name,
                             "index": state.index, "blocks": list(state.blocks), "block_seeds": list(state.seeds),
                             "base": base_state}).eval()


class StateModels:
    """The randomization states of one model, built lazily in cascade order: the one place that answers
    "this model at state X" (the local engine, Ray workers and the app's workspace all use it).

    ``get(state)`` builds the states up to ``state`` once and keeps them; iterating yields every state in
    order, kept only when ``keep`` (the local engine iterates with ``keep=False``: one state in memory;
    such an instance is for one iteration)."""

    def __init__(self, model: nn.Module, *, mode: str = "cascading", init: str = "reset", seed: int = 0,
                 keep: bool = True):
        self.names = [s.name for s in states(model, mode=mode)]
        self._states = cascade(model, mode=mode, init=init, seed=seed)
        self._built: dict[str, nn.Module] = {}
        self._keep = keep
        self._lock = threading.Lock()  # app sessions share one instance: one builder at a time

    def _next(self) -> tuple[str, nn.Module]:
        name, model = next(self._states)
        if self._keep:
            self._built[name] = model
        return name, model

    def get(self, state: str) -> nn.Module:
        if state not in self.names:
            raise ConfigError(f"unknown randomization state {state!r}; this model's states are {self.names}")
        if not self._keep:
            raise ConfigError("StateModels(keep=False) is for one iteration; use keep=True to get states by name")
        with self._lock:
            while state not in self._built:
                self._next()
            return self._built[state]

    def __iter__(self) -> Iterator[tuple[str, nn.Module]]:
        for name in self.names:
            with self._lock:
                model = self._built[name] if name in self._built else self._next()[1]
            yield name, model
