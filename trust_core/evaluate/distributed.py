"""The Ray engine: the same work units as the local engine, run by Ray actors on any number of workers.

Each actor rebuilds the evaluation once (dataset index, models), keeps every model state it has built,
and runs the units it is given through the shared on-disk cache, so a unit finished by any worker is
never computed again — neither by another worker nor by a rerun. Actors are restarted and their unfinished
unit retried when a worker dies (``max_restarts``/``max_task_retries``); if the whole run is stopped,
rerunning completes only what is missing. Results are identical to the local engine's, bit for bit on
the driver's kind of CPU: maps are deterministic and content-addressed, each unit is the same batch of images
as the local engine's, and by default each actor runs as many torch threads as the driver (a CPU
convolution's summation order depends on its thread count: 1 and 2 threads differ in the last bits, and a
rank-based score such as AUPRC can then move by 1e-5). Ray is an optional extra:
``pip install -r requirements-ray.txt``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .units import UnitOutput


@dataclass(frozen=True)
class EvaluationSpec:
    """What a worker needs to rebuild an :class:`~trust_core.evaluate.Evaluation` (all picklable)."""

    dataset_class: type
    dataset_root: str
    dataset_kwargs: dict
    model_paths: list
    config: object
    localizers: list
    localizer_maps: list
    cache_dir: str | None
    unreadable: dict  # films the driver skipped (image id → why): left out of the worker's dataset too


def spec_of(evaluation) -> EvaluationSpec:
    dataset = evaluation.dataset
    return EvaluationSpec(type(dataset), str(dataset.root), dataset.reopen_kwargs(), list(evaluation.model_sources)[:evaluation.trained], evaluation.config,
                          list(evaluation.localizer_paths), list(evaluation.localizer_maps),
                          str(evaluation.cache.directory) if evaluation.cache is not None else None,
                          dict(dataset.unreadable))


class UnitWorker:
    """A Ray actor body: one rebuilt evaluation, model states kept across units."""

    def __init__(self, spec: EvaluationSpec, threads: int = 1):
        import torch

        from ..cache.store import Store
        from .run import Evaluation

        torch.set_num_threads(max(1, threads))  # before any computation: the kernels' summation order
        dataset = spec.dataset_class(spec.dataset_root, **spec.dataset_kwargs)
        dataset.exclude(spec.unreadable)  # the driver's screened dataset, not one with its unreadable films back
        cache = Store(spec.cache_dir) if spec.cache_dir else None
        self.evaluation = Evaluation(dataset, spec.model_paths, spec.config, localizers=spec.localizers,
                                     localizer_maps=spec.localizer_maps, cache=cache)
        self.states: dict[int, object] = {}  # model index → its StateModels

    def pid(self) -> int:
        return os.getpid()

    def image_ids(self) -> list[str]:
        return self.evaluation.dataset.ids()

    def threads(self) -> int:
        import torch

        return torch.get_num_threads()

    def _model(self, model_index: int, state: str):
        if model_index not in self.states:
            self.states[model_index] = self.evaluation.state_models(model_index)
        return self.states[model_index].get(state)

    def run(self, unit) -> "UnitOutput":
        return self.evaluation.run_unit(unit, self._model(unit.model_index, unit.state))


def ray_executor(*, address: str | None = None, workers: int | None = None, gpus_per_worker: float = 0.0,
                 threads_per_worker: int | None = None, num_cpus: int | None = None, max_restarts: int = 2,
                 on_actors=None):
    """An ``executor`` for :meth:`Evaluation.run` that spreads units over Ray actors.

    Parameters
    ----------
    address : a Ray cluster (``ray://head:10001`` or ``auto``); None starts a local one.
    workers : number of actors (default: as many as the cluster's CPUs hold at ``threads_per_worker``
        each, or one per GPU when ``gpus_per_worker`` > 0).
    gpus_per_worker : GPUs reserved per actor (their maps are computed on ``cuda``).
    threads_per_worker : torch threads per actor, and the CPUs Ray reserves for each (shared down when
        ``workers`` actors would not otherwise fit: never an actor waiting for a CPU no other frees).
        None (the default): the driver's own count (``torch.get_num_threads()``), so that every map equals
        the local engine's bit for bit on the same kind of CPU; another count is faster to spread but
        differs from the local engine in the last bits of the maps.
    on_actors : called with the actor handles once they exist (monitoring, tests).
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray: pip install -r requirements-ray.txt") from None

    def execute(evaluation, units, progress=None):
        if gpus_per_worker and evaluation.config.device in (None, "cpu"):
            raise ConfigError("--gpus-per-worker needs --device cuda")
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True)
        try:
            import torch

            threads = max(1, threads_per_worker or torch.get_num_threads())
            resources = ray.available_resources()
            cpus = resources.get("CPU", 1)
            count = workers or max(1, int(resources.get("GPU", 0) / gpus_per_worker) if gpus_per_worker
                                   else int(cpus // threads))
            actor = ray.remote(num_cpus=_reserved_cpus(threads, count, cpus), num_gpus=gpus_per_worker,
                               max_restarts=max_restarts, max_task_retries=max_restarts)(UnitWorker)
            spec = spec_of(evaluation)
            actors = [actor.remote(spec, threads) for _ in range(count)]
            if on_actors is not None:
                on_actors(actors)
            # Units of one model state go to one actor (it builds the state once); states are dealt round robin.
            groups: dict[tuple[int, str], list[int]] = {}
            for k, unit in enumerate(units):
                groups.setdefault((unit.model_index, unit.state), []).append(k)
            pending = {}
            for g, indices in enumerate(groups.values()):
                for k in indices:
                    pending[actors[g % count].run.remote(units[k])] = k
            outputs: list["UnitOutput | None"] = [None] * len(units)
            done = 0
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    k = pending.pop(ref)
                    outputs[k] = evaluation.keep(units[k], ray.get(ref))  # its maps to the driver's spool
                    done += 1
                    if progress:
                        progress(done, len(units), f"{units[k].state} (ray, {count} workers)")
            return outputs
        finally:
            if started_here:
                ray.shutdown()

    return execute


def _reserved_cpus(threads: int, count: int, cpus: float) -> float:
    """The CPUs Ray reserves per actor: its threads, or an equal share of ``cpus`` when ``count`` actors
    of that many would not fit (Ray's rule: whole numbers from 1 up, fractions below)."""
    if count * threads <= cpus:
        return threads
    share = cpus / max(1, count)
    return float(math.floor(share)) if share >= 1 else max(1e-4, math.floor(share * 1e4) / 1e4)
