"""An evaluation: plan the work, execute it, hand the maps to the criteria (protocol.md sections 1, 3, 4, 6).

Work is split into independent **units** (:mod:`.units`) — one model state × a group of images, all
methods — so that it can be spread over workers (the local engine, or Ray: :mod:`.distributed`) and so
that every finished unit lands in the map cache at once: a killed run resumes where it stopped and reaches
identical results (maps are deterministic and content-addressed). Each finished unit's per-image measures
are scored at once and appended to disk (:mod:`.ledger`), and its maps wait in a spool on disk
(:mod:`.spool`); each criterion then scores itself from those measures and, for what compares images
across units, from the maps (:mod:`.criteria`: ``score(ctx)``, the baselines and verdict rules with it), and :func:`~.outputs.write_outputs` writes the tables and
``summary.json``.

Every verdict is **pass / fail / inconclusive** from the 95 % bootstrap CI of the paired per-image
difference to the baseline over the same images (flagged maps drop the image on both sides), and
inconclusive below ``MIN_PAIRED_N`` (6) paired images or without a baseline (:mod:`.verdicts`); the
paper's point rule (means only) is kept beside it as ``paper_rule``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..cache.codec import MAP_STORAGES
from ..cache.store import Store
from ..data.datasets import RadiographDataset
from ..data.transforms import resize_image
from ..errors import ConfigError
from ..metrics import auprc_batch
from ..models.checkpoint import load
from ..models.info import info_of
from ..randomization.cascade import StateModels, model_seed
from ..saliency import PRESETS, explain, explain_for_classes, predicted_classes, resolve_methods, resolve_params
from .verdicts import VERDICT_RULE
from .criteria import (CLIPPED, CRITERIA, MAP_FORMS, UNCLIPPED, resolve_criteria,
                       resolve_scored_maps, scored_form)
from .criteria import score as score_criterion
from .config import EVAL_CODE_VERSION, RANDOMIZATION_CLASSES, EvalConfig  # noqa: F401  (the evaluation's names)
from .units import Unit, UnitOutput, run_units_local  # noqa: F401
from .localizers import check_localizers, localizer_baselines
from .outputs import describe_evaluation, write_outputs  # noqa: F401  (the evaluation's names)


@dataclass
class EvalResult:
    tables: dict[str, pd.DataFrame]
    summary: dict
    config: dict
    stats: dict


class Evaluation:
    """A planned evaluation: models, image sets, units; run it with :meth:`run`."""

    def __init__(self, dataset: RadiographDataset, model_paths: list[str | Path], config: EvalConfig = EvalConfig(),
                 *, localizers: list[str | Path] = (), localizer_maps=(),
                 cache: Store | None = None):
        if not model_paths:
            raise ConfigError("at least one model checkpoint is needed")
        try:
            self.criteria = resolve_criteria(config.criteria)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self.config = config
        try:
            self.scored_maps = resolve_scored_maps(config.scored_maps)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if config.randomization_class not in RANDOMIZATION_CLASSES:
            raise ConfigError(f"randomization_class must be one of {list(RANDOMIZATION_CLASSES)}, got "
                              f"{config.randomization_class!r}")
        if config.map_storage not in MAP_STORAGES:
            raise ConfigError(f"map_storage must be one of {MAP_STORAGES}, got {config.map_storage!r}")
        self.methods = resolve_methods(config.methods)
        self.params = resolve_params(config.preset, **config.overrides)
        self.dataset = dataset
        self.model_sources = list(model_paths)  # paths, or ModelSpec objects (spec flags): what workers reload
        self.model_paths = [str(getattr(p, "path", None) or getattr(p, "source", p)) for p in model_paths]
        self.models = [load(p, num_classes=2) for p in model_paths]  # the datasets are binary
        self.arches = [info_of(m).name for m in self.models]
        self.size = info_of(self.models[0]).size
        # Ground truth is framed like the films under the maps: every model of a run shares the rule.
        self.resize = info_of(self.models[0]).prep.resize
        differing = [p for p, m in zip(model_paths, self.models) if info_of(m).prep.resize != self.resize]
        if differing:
            raise ConfigError(f"models {[str(p) for p in differing]} crop the film differently from the first "
                              f"({self.resize!r}): evaluate models with one resize rule together")
        self.localizer_paths = [str(p) for p in localizers]
        if isinstance(localizer_maps, (str, Path)):
            localizer_maps = [localizer_maps]
        self.localizer_maps = [str(p) for p in (localizer_maps or ())]
        self.cache = cache
        positives = dataset.ids(split=config.utility_split, label=1)
        if not positives:
            raise ConfigError(f"no positive image in the {config.utility_split!r} split to evaluate")
        self.utility_ids = positives[: config.utility_limit] if config.utility_limit else positives
        rng = np.random.default_rng(config.ssim_seed)
        count = min(config.ssim_images, len(positives))
        self.ssim_ids = sorted(rng.choice(positives, size=count, replace=False).tolist())
        # CheXlocalize tunes each method's binarization threshold on the validation split's positives
        if "smprt" in self.criteria and (config.smprt_samples < 2 or not 0 < config.smprt_noise <= 10):
            raise ConfigError(f"sMPRT needs at least 2 samples and a noise level in (0, 10], got "
                              f"{config.smprt_samples} and {config.smprt_noise}")
        if {"emprt", "smprt"} & set(self.criteria) and config.randomization_mode != "cascading":
            raise ConfigError("eMPRT and sMPRT compare the original with the fully randomized model, which only "
                              "cascading randomization reaches: use --randomization cascading, or leave them out")
        self.tuning_ids = dataset.ids(split="val", label=1) if "miou" in self.criteria else []
        if "miou" in self.criteria and not self.tuning_ids:
            raise ConfigError("the miou criterion tunes its thresholds on positive images of the 'val' split, and "
                              "this dataset has none: add validation positives or leave miou out")
        families = [info_of(m).family for m in self.models]  # the architecture, or the whole spec but weights
        self.replicates = [i for i, f in enumerate(families) if f == families[0]]
        self.others = [i for i, f in enumerate(families) if f != families[0]]
        self.trained = len(self.models)
        if "data_randomization" in self.criteria and not config.shuffled_models:
            raise ConfigError("the data_randomization criterion compares the maps with those of a model trained on "
                              "shuffled labels: train one (`trust train --shuffle-labels`) and give it with "
                              "--shuffled-model")
        for path in config.shuffled_models:  # after the trained ones: never a replicate or another architecture
            shuffled = load(path, num_classes=2)
            if info_of(shuffled).prep.resize != self.resize:
                raise ConfigError(f"the shuffled-label model {path} crops the film differently from the first model")
            self.models.append(shuffled)
            self.model_sources.append(str(path))
            self.model_paths.append(str(path))
            self.arches.append(info_of(shuffled).name)
        self.shuffled = list(range(self.trained, len(self.models)))
        self._images: dict[tuple[str, int], torch.Tensor] = {}
        self._gt: dict[str, np.ndarray] = {}
        localization = [c for c in self.criteria if CRITERIA[c].family == "localization"]
        if localization:  # every ground truth scored, read once now (kept for scoring): a film without one fails here
            empty = [i for i in self.utility_ids + self.tuning_ids if not self.masks([i]).any()]
            if empty:
                raise ConfigError(f"the criteria {localization} score maps against ground-truth masks, and "
                                  f"{len(empty)} positive image(s) of {dataset.root} have none at {self.size} px "
                                  f"(e.g. {empty[:3]}): give boxes or masks for every positive (`trust check` "
                                  f"lists the films), or choose other criteria")
        check_localizers(self, set(self.criteria))  # a bad localizer is said now, not after every unit has run

    # -- planning ----------------------------------------------------------------------------------
    def units(self) -> list[Unit]:
        """Every unit of this evaluation, in execution order."""
        criteria = set(self.criteria)
        families = {CRITERIA[c].family for c in criteria}
        localization = "localization" in families
        similarity = bool(families - {"localization"})  # the SSIM image set
        randomized = "randomization" in families
        plan: list[tuple[int, str, int, list[str]]] = []
        first_ids = sorted(set(self.utility_ids if localization else []) | set(self.ssim_ids if similarity else [])
                           | set(self.tuning_ids if "miou" in criteria else []))
        plan.append((0, "original", 0, first_ids))
        needs_original = set()
        if "utility" in criteria:  # utility of every replicate and of the other architectures
            needs_original |= set(range(self.trained))
        if "data_randomization" in criteria:
            needs_original |= set(self.shuffled)
        if randomized:
            needs_original |= set(self.replicates)
        if "repeatability" in criteria:
            needs_original |= set(self.replicates)
        if "reproducibility" in criteria:
            needs_original |= set(self.others)
        for i in sorted(needs_original - {0}):
            ids = set(self.ssim_ids if similarity else [])
            ids |= set(self.utility_ids if "utility" in criteria else [])
            plan.append((i, "original", 0, sorted(ids)))
        if randomized:
            from ..randomization.cascade import states
            for i in self.replicates:
                for state in states(self.models[i], mode=self.config.randomization_mode)[1:]:
                    plan.append((i, state.name, state.index, self.ssim_ids))
        g = self.config.group
        units = [Unit(i, name, k, tuple(ids[s:s + g])) for i, name, k, ids in plan for s in range(0, len(ids), g)]
        if "smprt" in criteria:  # the noisy copies of the SSIM images, original and fully randomized states
            from ..randomization.cascade import states
            for i in self.replicates:
                final = states(self.models[i], mode=self.config.randomization_mode)[-1]
                for name, index in (("original", 0), (final.name, final.index)):
                    for k in range(1, self.config.smprt_samples):
                        units += [Unit(i, name, index, tuple(self.ssim_ids[s:s + g]), noisy_copy=k)
                                  for s in range(0, len(self.ssim_ids), g)]
        return units

    # -- execution ---------------------------------------------------------------------------------
    def model_input(self, image_id: str, prep) -> torch.Tensor:
        """The image in a model's input space (its size, channels and value mapping), kept per mapping."""
        key = (image_id, prep)
        if key not in self._images:
            self._images[key] = prep(self.dataset.image(image_id, prep.size, prep.resize))
        return self._images[key]

    def state_models(self, model_index: int, *, keep: bool = True) -> StateModels:
        """Original and randomized copies of one model, by state name (lazily, in cascade order)."""
        model = self.models[model_index]
        return StateModels(model, mode=self.config.randomization_mode, init=self.config.randomization_init,
                           seed=model_seed(model, self.config.randomization_seed), keep=keep)

    def run_unit(self, unit: Unit, model: torch.nn.Module) -> UnitOutput:
        """Maps of one unit (through the cache), framed at the first model's size."""
        prep = info_of(model).prep
        x = torch.stack([self.model_input(i, prep) for i in unit.image_ids])
        # a randomized state explains the class its trained model explains (randomization_class 'original')
        classifier = (self.models[unit.model_index] if unit.state != "original"
                      and self.config.randomization_class == "original" else model)
        if unit.noisy_copy:  # sMPRT: a noisy copy explains the class explained for the image itself (Quantus's y)
            result = self._explain_pinned(model, x, torch.stack([image + self._smprt_noise(image, unit.noisy_copy)
                                                                 for image in x]), classifier)
        elif classifier is not model:
            result = self._explain_pinned(model, x, x, classifier)
        else:
            result = explain(model, x, methods=self.methods, preset=self.config.preset, device=self.config.device,
                             precision=self.config.precision, cache=self.cache, batch_size=self.config.batch_size,
                             map_storage=self.config.map_storage, **self.config.overrides)

        def framed(value):
            if value.shape != (self.size, self.size):  # another architecture's input size
                return resize_image(value, self.size) if np.isfinite(value).all() else np.full(
                    (self.size, self.size), np.nan, np.float32)
            return value

        ids = unit.image_ids
        return UnitOutput(
            image_ids=tuple(ids),
            maps={m: np.stack([framed(result[m][j]) for j in range(len(ids))]) for m in self.methods},
            unclipped={m: np.stack([framed(result.unclipped[m][j]) for j in range(len(ids))]) for m in self.methods},
            flags={i: {m: result.flags[m][j] for m in self.methods} for j, i in enumerate(ids)},
            stats={i: {m: result.stats[m][j] for m in result.stats} for j, i in enumerate(ids)},
            targets={i: int(result.targets[j]) for j, i in enumerate(ids)},
            passes=result.passes, forwards=getattr(result, "forwards", 0),
            cached_images=sum(all(result.from_cache[m][j] for m in self.methods) for j in range(len(ids))),
            half_precision=sum(c == "float16" for m in self.methods for c in result.kept[m]),
            percentile=self.params["percentile"])

    def keep(self, unit: Unit, output: UnitOutput) -> UnitOutput:
        """What the run keeps of a finished unit: its maps go to the spool (disk) while a run is on, the rest
        (flags, targets, statistics) stays in memory."""
        if getattr(self, "_spool", None) is None:
            return output
        if getattr(self, "_ledger", None) is not None:
            self._ledger.add(unit, output)  # scored now, while its maps are in memory (:mod:`.ledger`)
        return self._spool.add(unit, output)

    def release_inputs(self) -> None:
        """Forget the model inputs read so far (a model's states are done: the next model reads its own)."""
        self._images.clear()

    def planned_store_bytes(self, units: list[Unit] | None = None) -> int:
        """What this run's maps will add to the store at most (the codec's bound for this map size)."""
        from ..cache.codec import planned_bytes

        units = self.units() if units is None else units
        return sum(len(u.image_ids) * len(self.methods)
                   * planned_bytes(info_of(self.models[u.model_index]).size, self.config.map_storage) for u in units)

    def reserve_store(self, units: list[Unit] | None = None) -> str | None:
        """Raise the store's limit for this run where it needs more (see :meth:`Store.reserve`); a note to say."""
        if self.cache is None:
            return None
        return self.cache.reserve(self.planned_store_bytes(units))

    def run(self, *, progress: Callable[[int, int, str], None] | None = None,
            executor: Callable | None = None, spool_dir: str | Path | None = None) -> EvalResult:
        """Run every unit (``executor`` may run them elsewhere, see :func:`run_units_local`) and score. Maps
        wait for scoring in a spool on disk (:mod:`~trust_core.evaluate.spool`: in ``spool_dir``, else in the
        cache's folder, else the system's temporary folder), removed when the run ends."""
        from .ledger import MeasureLedger
        from .spool import MapSpool

        started = time.perf_counter()
        units = self.units()
        note = self.reserve_store(units)
        if note:
            import warnings

            warnings.warn(note, RuntimeWarning, stacklevel=2)
        where = spool_dir or (self.cache.directory / "spool" if self.cache is not None else None)
        with MapSpool(where, storage=self.config.map_storage) as spool:
            self._spool, self._ledger = spool, MeasureLedger(spool.folder, self, spool, units)
            spool.plan(units)
            try:
                outputs = (executor or run_units_local)(self, units, progress)
                outputs = [o if o.spooled else spool.add(u, o) for u, o in zip(units, outputs)]
                self.release_inputs()
                result = self._score(units, outputs, time.perf_counter() - started, spool)
                result.summary["maps_kept"] = {"storage": self.config.map_storage, "maps": spool.count,
                                               "half_precision": int(sum(o.half_precision for o in outputs))}
                return result
            finally:
                self._spool = self._ledger = None

    # -- scoring -----------------------------------------------------------------------------------
    def _score(self, units: list[Unit], outputs: list[UnitOutput], seconds: float, spool) -> EvalResult:
        """Every criterion scored by its own module (:func:`~trust_core.evaluate.criteria.score`), on the maps
        read back from the spool in the form each scores."""
        from .criteria.context import ScoringContext
        from .spool import CLIPPED_FORM, UNCLIPPED_FORM

        flags: dict[tuple[int, str], dict] = {}
        stats: dict[tuple[int, str], dict] = {}
        state_index: dict[str, int] = {}
        for unit, out in zip(units, outputs):
            if unit.noisy_copy:
                continue
            flags.setdefault((unit.model_index, unit.state), {}).update(out.flags)
            stats.setdefault((unit.model_index, unit.state), {}).update(out.stats)
            state_index[unit.state] = unit.state_index
        criteria = set(self.criteria)
        localizer = localizer_baselines(self, criteria)
        ctx = ScoringContext(
            plan=self, forms={CLIPPED: spool.maps(CLIPPED_FORM), UNCLIPPED: spool.maps(UNCLIPPED_FORM)},
            noisy={CLIPPED: spool.maps(CLIPPED_FORM, noisy=True), UNCLIPPED: spool.maps(UNCLIPPED_FORM, noisy=True)},
            flags=flags, stats=stats, state_index=state_index, localizer=localizer, ledger=getattr(self, "_ledger", None))
        tables: dict[str, pd.DataFrame] = {}
        summary: dict = {"criteria": {}, "methods": self.methods, "preset": self.config.preset,
                         "criteria_run": list(self.criteria),
                         "code_version": EVAL_CODE_VERSION,
                         "preset_is_paper": PRESETS[self.config.preset].paper,
                         "dataset": {"kind": self.dataset.kind, "mask_rule": self.dataset.mask_rule,
                                     **self.dataset.selection},
                         "verdict_rule": VERDICT_RULE,
                         "parameters": {k: self.params[k] for k in ("gradcam_interpolation", "xrai_postprocess",
                                                                    "noise_per_model", "xrai_baselines")},
                         "data_range": self.config.data_range, "map_storage": self.config.map_storage}
        for key in self.criteria:
            result = score_criterion(key, ctx)
            tables.update(result.tables)
            block = result.as_dict()  # what each criterion scored, said in its results
            form = scored_form(key, self.scored_maps)
            block["scored_maps"] = form
            block["scored_maps_note"] = MAP_FORMS[form] + (
                " — a departure from the criterion's default" if key in self.scored_maps else "")
            if CRITERIA[key].family == "randomization":
                block["explained_class"] = RANDOMIZATION_CLASSES[self.config.randomization_class]
            summary["criteria"][key] = block
        if localizer["agreement"] is not None:
            tables["localizer_agreement"] = pd.DataFrame({"image_id": self.ssim_ids, "ssim": localizer["agreement"]})
        elif criteria & {"repeatability", "reproducibility"}:
            tables["localizer_agreement"] = pd.DataFrame(columns=["image_id", "ssim"])
        stats_out = {"units": len(units), "passes": int(sum(o.passes for o in outputs)),
                     "forwards": int(sum(o.forwards for o in outputs)),
                     "cached_images": int(sum(o.cached_images for o in outputs)),
                     "image_maps": int(sum(len(u.image_ids) for u in units)), "seconds": round(seconds, 1)}
        return EvalResult(tables=tables, summary=summary, config=self.describe(), stats=stats_out)

    # -- what the criteria read (criteria/context.py holds the measures) ---------------------------
    def model_label(self, model_index: int) -> str:
        return f"{self.arches[model_index]}#{model_index}"


    def masks(self, ids: list[str]) -> np.ndarray:
        """Ground-truth masks (N, S, S) at the classifiers' size, each read and rasterized once per run."""
        for i in ids:
            if i not in self._gt:
                self._gt[i] = self.dataset.mask(i, self.size, self.resize)
        return np.stack([self._gt[i] for i in ids])


    def prior(self) -> np.ndarray:
        """The average ground-truth mask of train+val (the low baseline of every localization criterion)."""
        if getattr(self, "_prior_mask", None) is None:  # stored beside the split file, read on reruns
            from .baseline import average_mask

            self._prior_mask = average_mask(self.dataset, self.size, self.resize)
        return self._prior_mask


    def average_mask_auprc(self, masks: np.ndarray) -> np.ndarray:
        prior = self.prior()
        return auprc_batch(torch.from_numpy(np.repeat(prior[None], len(masks), 0)), torch.from_numpy(masks)).numpy()


    def partners(self) -> list[np.ndarray]:
        """Random partners of each SSIM image for the random-pair baseline (``baseline_pairs`` other
        images, seeded), the same for every method and replicate."""
        rng = np.random.default_rng(self.config.ssim_seed)
        n = len(self.ssim_ids)
        out = []
        for k in range(n):
            others = np.delete(np.arange(n), k)
            out.append(rng.choice(others, size=min(self.config.baseline_pairs, others.size), replace=False)
                       if others.size else others)
        return out


    def _explain_pinned(self, model, clean: torch.Tensor, images: torch.Tensor, classifier=None):
        """Maps of ``images`` explaining, per image, the class ``classifier`` (default: ``model``) predicts for
        its ``clean`` version, as one ``explain`` result. A class fixed by ``--target`` or the model's spec
        stays fixed."""
        kwargs = dict(methods=self.methods, preset=self.config.preset, device=self.config.device,
                      precision=self.config.precision, cache=self.cache, batch_size=self.config.batch_size,
                      map_storage=self.config.map_storage, **self.config.overrides)
        if "target" in self.config.overrides or info_of(model).target is not None:
            return explain(model, images, **kwargs)  # the class is fixed already
        classes = predicted_classes(classifier if classifier is not None else model, clean,
                                    device=self.config.device, precision=self.config.precision)
        return explain_for_classes(model, images, classes, **kwargs)

    def _smprt_noise(self, image: torch.Tensor, k: int) -> torch.Tensor:
        """The k-th sMPRT noise of an image: N(0, σ²), σ = smprt_noise × (max − min), seeded by the image's
        content, the SSIM seed and k (the same copies for every model state)."""
        from ..saliency.methods.base import seeded_generator

        generator = seeded_generator(image.cpu(), self.config.ssim_seed, "smprt", k)
        sigma = self.config.smprt_noise * float(image.max() - image.min())
        return (torch.randn(image.shape, generator=generator) * sigma).to(image.device)

    def describe(self) -> dict:
        """What ``config.json`` records of this evaluation (see :func:`~.outputs.describe_evaluation`)."""
        return describe_evaluation(self)


def evaluate(dataset: RadiographDataset, model_paths, config: EvalConfig = EvalConfig(), *,
             localizers=(), localizer_maps=(), cache: Store | None = None, out=None, progress=None,
             strict: bool = False) -> EvalResult:
    """Plan, run (local engine) and score an evaluation; write outputs to ``out`` when given. Films that
    cannot be read are skipped and listed first (``strict``: refused), see
    :func:`~trust_core.evaluate.films.screen_for_evaluation`."""
    from .films import screen_for_evaluation

    if out is not None:
        from ..io import writable_folder
        from .outputs import check_results_folder

        check_results_folder(writable_folder(out), overwrite=True)  # before the work, not after it
    first = info_of(model_paths[0]) if isinstance(model_paths[0], torch.nn.Module) else info_of(load(model_paths[0], num_classes=2))
    screen_for_evaluation(dataset, config.criteria, utility_split=config.utility_split, strict=strict,
                          size=first.size, resize=first.prep.resize)
    evaluation = Evaluation(dataset, model_paths, config, localizers=localizers, localizer_maps=localizer_maps,
                            cache=cache)
    result = evaluation.run(progress=progress)
    result.config.setdefault("dataset", {})["unreadable"] = dict(dataset.unreadable)
    if out is not None:
        write_outputs(result, out)
    return result
