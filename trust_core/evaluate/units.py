"""The unit of work and of caching — one model state × a group of images, all methods — what a finished unit
gives (:class:`UnitOutput`), and the local engine that runs units in order (the Ray engine is
:mod:`.distributed`)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Unit:
    """One model state × a group of images: the unit of work and of caching."""

    model_index: int
    state: str
    state_index: int
    image_ids: tuple[str, ...]
    noisy_copy: int = 0  # sMPRT: explains the k-th noisy copy of each image (0: the image itself)


@dataclass(frozen=True)
class UnitOutput:
    """What one unit gives: the maps of its images in both forms, as (N, H, W) stacks per method (framed at the
    first model's size; None once they are spooled), each map's flag and statistics, the class explained per
    image, and what it cost.

    flags, stats : image id → method → the map's flag (None: a usable map) / statistics (XRAI's…).
    targets : image id → the class explained.
    passes, forwards : model passes (forward + backward) and forwards alone that were computed.
    cached_images : images whose maps of every method came from the store.
    half_precision : maps the store keeps in half precision.
    percentile : the clip that derives the clipped form from the unclipped one.
    """

    image_ids: tuple[str, ...]
    maps: dict[str, np.ndarray] | None
    unclipped: dict[str, np.ndarray] | None
    flags: dict[str, dict] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)
    passes: int = 0
    forwards: int = 0
    cached_images: int = 0
    half_precision: int = 0
    percentile: float | None = None

    @property
    def spooled(self) -> bool:
        return self.maps is None

    def per_image(self):
        """(image id, method, clipped map, unclipped map) for every map of the unit."""
        for j, image_id in enumerate(self.image_ids):
            for method, stack in self.maps.items():
                yield image_id, method, stack[j], self.unclipped[method][j]

    def without_maps(self) -> "UnitOutput":
        """This output once its maps are on disk: what the run keeps in memory."""
        return replace(self, maps=None, unclipped=None)


def run_units_local(evaluation, units: list[Unit], progress=None) -> list[UnitOutput]:
    """The local engine: units in order, each model state built once, maps through the cache."""
    outputs: list[UnitOutput | None] = [None] * len(units)
    by_model: dict[int, list[int]] = {}
    for k, unit in enumerate(units):
        by_model.setdefault(unit.model_index, []).append(k)
    done = 0
    for model_index, indices in by_model.items():
        wanted = {units[k].state for k in indices}
        for state_name, model in evaluation.state_models(model_index, keep=False):
            if state_name not in wanted:
                continue
            for k in indices:
                if units[k].state == state_name:
                    outputs[k] = evaluation.keep(units[k], evaluation.run_unit(units[k], model))
                    done += 1
                    if progress:
                        progress(done, len(units), f"{evaluation.arches[model_index]}#{model_index} {state_name}")
            wanted.discard(state_name)
            if not wanted:
                break
        evaluation.release_inputs()  # this model's states are done
    return outputs
