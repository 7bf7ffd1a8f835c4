"""The four trust criteria over a dataset (protocol.md sections 1, 3, 4, 6).

Work is split into independent **units** — one model state × a group of images, all methods — so that
it can be spread over workers (see ``engine=``) and so that every finished unit lands in the map cache at
once: a killed run resumes where it stopped and reaches identical results (maps are deterministic and
content-addressed). Metrics are cheap and recomputed from the maps.

Criteria and their baselines:

* **utility** — per-image AUPRC on the positive test images; low baseline: the average ground-truth mask
  of train+val scored the same way; high baseline: a localizer's score maps (U-Net or user maps,
  min–max normalized like saliency maps). Also for every replicate, the other architectures and each
  randomized state (the paper's "untrained" rows). Paired Wilcoxon tests against both baselines,
  Holm-corrected across the methods.
* **randomization** — SSIM(map of the original, map after randomization) per state and image, for every
  replicate of the main architecture; baseline: per replicate, mean SSIM between its original maps of
  two different images (``baseline_pairs`` random partners per image), averaged over the same
  replicates as the states. Cascading mode decides on the fully randomized state; independent mode on
  every block (each must change the maps).
* **repeatability / reproducibility** — per-image SSIM between maps of two replicates of one
  architecture / of two architectures; high baseline: SSIM between two localizers trained with different
  seeds.

Every verdict is **pass / fail / inconclusive** from the 95 % bootstrap CI of the paired per-image
difference to the baseline over the same images (flagged maps drop the image on both sides), and
inconclusive below ``MIN_PAIRED_N`` (6) paired images or without a baseline (:mod:`.verdicts`); the
paper's point rule (means only) is kept beside it as ``paper_rule``.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..cache.codec import DEFAULT_MAP_STORAGE, MAP_STORAGES
from ..cache.store import Store, weights_digest
from ..data.datasets import RadiographDataset
from ..data.transforms import resize_image
from ..models.preprocessing import paper_preprocessing
from ..errors import ConfigError
from ..io import atomic_path, atomic_write
from ..metrics import PAPER_DATA_RANGE, auprc_batch
from ..models.checkpoint import load
from ..models.info import info_of
from ..randomization.cascade import StateModels, model_seed
from ..saliency import PRESETS, explain, explain_for_classes, predicted_classes, resolve_methods, resolve_params
from ..saliency.registry import PAPER_PRESET
from ..saliency.postprocess import minmax_maps
from .verdicts import VERDICT_RULE
from .criteria import (CLIPPED, CRITERIA, MAP_FORMS, UNCLIPPED, PAPER_CRITERIA, resolve_criteria,
                       resolve_scored_maps, scored_form)
from .criteria import score as score_criterion
from .criteria.context import similarity
RANDOMIZATION_CLASSES = {
    "original": "each randomized state explains the class the trained model explains for the image (Adebayo et "
                "al. 2018; Quantus MPRT)",
    "own": "each randomized state explains its own predicted class (the tool's behaviour before evaluate-3)"}
# 2: verdicts from paired CIs, random-pair baseline per replicate, localizer normalization and pairing,
# utility of every model state, paper ground-truth rule and RSNA classes (results of 1 are not reused)
EVAL_CODE_VERSION = "evaluate-3"  # 3: criteria on the map form their authors score, randomized states explain
# the original model's class, 10,000 bootstrap resamples, mIoU binarized with > (CheXlocalize)


@dataclass(frozen=True)
class EvalConfig:
    """Everything an evaluation depends on; recorded in ``config.json``."""

    methods: tuple[str, ...] | None = None
    preset: str = PAPER_PRESET
    overrides: dict = field(default_factory=dict)
    criteria: tuple[str, ...] = PAPER_CRITERIA
    utility_split: str = "test"
    utility_limit: int | None = None
    ssim_images: int = 100
    ssim_seed: int = 1
    baseline_pairs: int = 50
    data_range: float = PAPER_DATA_RANGE
    randomization_mode: str = "cascading"
    randomization_init: str = "reset"
    randomization_seed: int = 0
    # the class a randomized state explains: 'original' (the class the trained model explains for the image,
    # as Adebayo et al. and Quantus's MPRT keep y fixed) or 'own' (each state's own predicted class)
    randomization_class: str = "original"
    scored_maps: dict = field(default_factory=dict)  # criterion → 'clipped' / 'unclipped' departures
    ttest: bool = False
    precision: str = "fp32"
    # how maps are kept and scored (trust_core.cache.codec): 'compact' (exact up to 120 KB a map, half
    # precision beyond), or 'exact'
    map_storage: str = DEFAULT_MAP_STORAGE
    device: str | None = None
    batch_size: int | None = None
    group: int = 4
    bootstrap_seed: int = 0
    shuffled_models: tuple[str, ...] = ()  # models trained on shuffled labels (data_randomization)
    smprt_samples: int = 10  # sMPRT: maps averaged over the image and smprt_samples − 1 noisy copies
    smprt_noise: float = 0.1  # their σ, × the image's (max − min) (Quantus SmoothMPRT's noise_magnitude)


@dataclass(frozen=True)
class Unit:
    """One model state × a group of images: the unit of work and of caching."""

    model_index: int
    state: str
    state_index: int
    image_ids: tuple[str, ...]
    noise: int = 0  # sMPRT: the k-th noisy copy of each image (0: the image itself)


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
                        units += [Unit(i, name, index, tuple(self.ssim_ids[s:s + g]), noise=k)
                                  for s in range(0, len(self.ssim_ids), g)]
        return units

    # -- execution ---------------------------------------------------------------------------------
    def _input(self, image_id: str, prep) -> torch.Tensor:
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

    def run_unit(self, unit: Unit, model: torch.nn.Module) -> dict:
        """Maps of one unit (through the cache): ``{image_id: {method: map}}`` plus cache statistics."""
        prep = info_of(model).prep
        x = torch.stack([self._input(i, prep) for i in unit.image_ids])
        # a randomized state explains the class its trained model explains (randomization_class 'original')
        classifier = (self.models[unit.model_index] if unit.state != "original"
                      and self.config.randomization_class == "original" else model)
        if unit.noise:  # sMPRT: a noisy copy explains the class explained for the image itself (Quantus's y)
            result = self._explain_pinned(model, x, torch.stack([image + self._smprt_noise(image, unit.noise)
                                                                 for image in x]), classifier)
        elif classifier is not model:
            result = self._explain_pinned(model, x, x, classifier)
        else:
            result = explain(model, x, methods=self.methods, preset=self.config.preset, device=self.config.device,
                             precision=self.config.precision, cache=self.cache, batch_size=self.config.batch_size,
                             map_storage=self.config.map_storage, **self.config.overrides)
        maps, unclipped = {}, {}

        def framed(value):
            if value.shape != (self.size, self.size):  # another architecture's input size
                return resize_image(value, self.size) if np.isfinite(value).all() else np.full(
                    (self.size, self.size), np.nan, np.float32)
            return value

        for j, image_id in enumerate(unit.image_ids):
            maps[image_id] = {m: framed(result[m][j]) for m in self.methods}
            unclipped[image_id] = {m: framed(result.unclipped[m][j]) for m in self.methods}
        cached = sum(all(result.from_cache[m][j] for m in self.methods) for j in range(len(unit.image_ids)))
        return {"maps": maps, "unclipped": unclipped, "flags": {i: {m: result.flags[m][j] for m in self.methods}
                                        for j, i in enumerate(unit.image_ids)},
                "stats": {i: {m: result.stats[m][j] for m in result.stats} for j, i in enumerate(unit.image_ids)},
                "targets": {i: int(result.targets[j]) for j, i in enumerate(unit.image_ids)},
                "passes": result.passes, "forwards": getattr(result, "forwards", 0), "cached_images": cached,
                "half_precision": sum(c == "float16" for m in self.methods for c in result.kept[m]),
                "percentile": self.params["percentile"]}

    def keep(self, unit: Unit, output: dict) -> dict:
        """What the run keeps of a finished unit: its maps go to the spool (disk) while a run is on, the rest
        (flags, targets, statistics) stays in memory."""
        return self._spool.add(unit, output) if getattr(self, "_spool", None) is not None else output

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
        from .spool import MapSpool

        started = time.perf_counter()
        units = self.units()
        note = self.reserve_store(units)
        if note:
            import warnings

            warnings.warn(note, RuntimeWarning, stacklevel=2)
        where = spool_dir or (self.cache.directory / "spool" if self.cache is not None else None)
        with MapSpool(where, storage=self.config.map_storage) as spool:
            self._spool = spool
            spool.plan(units)
            try:
                outputs = (executor or run_units_local)(self, units, progress)
                outputs = [o if "maps" not in o else spool.add(u, o) for u, o in zip(units, outputs)]
                self.release_inputs()
                result = self._score(units, outputs, time.perf_counter() - started, spool)
                result.summary["maps_kept"] = {"storage": self.config.map_storage, "maps": spool.count,
                                               "half_precision": int(sum(o.get("half_precision", 0)
                                                                         for o in outputs))}
                return result
            finally:
                self._spool = None

    # -- scoring -----------------------------------------------------------------------------------
    def _score(self, units: list[Unit], outputs: list[dict], seconds: float, spool) -> EvalResult:
        """Every criterion scored by its own module (:func:`~trust_core.evaluate.criteria.score`), on the maps
        read back from the spool in the form each scores."""
        from .criteria.context import ScoringContext
        from .spool import CLIPPED_FORM, UNCLIPPED_FORM

        flags: dict[tuple[int, str], dict] = {}
        stats: dict[tuple[int, str], dict] = {}
        state_index: dict[str, int] = {}
        for unit, out in zip(units, outputs):
            if unit.noise:
                continue
            flags.setdefault((unit.model_index, unit.state), {}).update(out["flags"])
            stats.setdefault((unit.model_index, unit.state), {}).update(out.get("stats", {}))
            state_index[unit.state] = unit.state_index
        criteria = set(self.criteria)
        localizer = self.localizer_baselines(criteria)
        ctx = ScoringContext(
            plan=self, forms={CLIPPED: spool.maps(CLIPPED_FORM), UNCLIPPED: spool.maps(UNCLIPPED_FORM)},
            noisy={CLIPPED: spool.maps(CLIPPED_FORM, noise=True), UNCLIPPED: spool.maps(UNCLIPPED_FORM, noise=True)},
            flags=flags, stats=stats, state_index=state_index, localizer=localizer)
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
        stats_out = {"units": len(units), "passes": int(sum(o["passes"] for o in outputs)),
                     "forwards": int(sum(o.get("forwards", 0) for o in outputs)),
                     "cached_images": int(sum(o["cached_images"] for o in outputs)),
                     "image_maps": int(sum(len(u.image_ids) for u in units)), "seconds": round(seconds, 1)}
        return EvalResult(tables=tables, summary=summary, config=self.describe(), stats=stats_out)

    # -- localizer baselines -----------------------------------------------------------------------
    def _localizer_sources(self) -> list[tuple[str, str, str]]:
        """(kind, name, path) of every localizer: score-map folders first, then checkpoints."""
        return ([("maps", f"score maps {Path(p).name}", p) for p in self.localizer_maps]
                + [("checkpoint", f"localizer {Path(p).name}", p) for p in self.localizer_paths])

    def _source_maps(self, source: tuple[str, str, str], ids: list[str]) -> np.ndarray:
        """Score maps (N, S, S) of one localizer, min–max normalized per map like saliency maps (NaN
        where a map is constant), at the classifiers' input size."""
        from ..models.localizer import load_localizer, load_score_maps, predict_maps

        kind, _name, path = source
        if kind == "maps":
            found = load_score_maps(path, ids, self.size, self.resize)
            missing = [i for i in ids if i not in found]
            if missing:
                raise ConfigError(f"{len(missing)} image(s) have no localizer score map in {path} "
                                  f"(e.g. {missing[:3]})")
            raw = np.stack([found[i] for i in ids])
        else:
            model = load_localizer(path)
            size = info_of(model).input_size or self.size
            raw = predict_maps(model, torch.stack([self._input(i, paper_preprocessing(size, self.resize)) for i in ids]))
            raw = np.stack([resize_image(m, self.size) for m in raw])
        normalized, _reasons = minmax_maps(torch.from_numpy(raw.astype(np.float32)))
        return normalized.numpy()

    def localizer_baselines(self, criteria: set) -> dict:
        """The high baselines: the first localizer's maps for utility; the SSIM between two localizers
        of the same kind (two score-map folders, else two checkpoints: retrained with another seed) for
        repeatability and reproducibility."""
        sources = self._localizer_sources()
        out = {"utility_source": None, "utility_maps": None, "agreement": None, "agreement_pair": None}
        if "utility" in criteria and sources:
            out["utility_source"] = sources[0][1]
            out["utility_maps"] = self._source_maps(sources[0], self.utility_ids)
        if criteria & {"repeatability", "reproducibility"}:
            for kind in ("maps", "checkpoint"):
                same = [s for s in sources if s[0] == kind]
                if len(same) >= 2:
                    a, b = (self._source_maps(s, self.ssim_ids) for s in same[:2])
                    out["agreement"] = similarity("ssim", a, b, data_range=self.config.data_range)
                    out["agreement_pair"] = f"{same[0][1]} vs {same[1][1]}"
                    break
        return out

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
        import captum
        import skimage
        import sklearn

        from .. import __version__
        from ..saliency import CODE_VERSION

        return {"config": asdict(self.config), "methods": self.methods, "params": self.params,
                "dataset": {"kind": self.dataset.kind, "root": str(self.dataset.root),
                            "fingerprint": self.dataset.fingerprint, "skipped": self.dataset.skipped.counts,
                            "mask_rule": self.dataset.mask_rule, **self.dataset.selection},
                "models": [{"path": p, "arch": a, "spec": info_of(m).spec, "weights_digest": weights_digest(m),
                            "meta": {k: v for k, v in info_of(m).meta.items() if k != "spec"},
                            "shuffled_labels": index >= self.trained}
                           for index, (p, a, m) in enumerate(zip(self.model_paths, self.arches, self.models))],
                "localizers": self.localizer_paths, "localizer_maps": self.localizer_maps,
                "image_size": self.size, "utility_images": len(self.utility_ids), "ssim_images": len(self.ssim_ids),
                "versions": {"trust_core": __version__, "saliency_code": CODE_VERSION, "evaluation_code": EVAL_CODE_VERSION, "torch": str(torch.__version__),
                             "captum": captum.__version__, "scikit-image": skimage.__version__,
                             "scikit-learn": sklearn.__version__, "numpy": np.__version__,
                             "python": platform.python_version()}}


def run_units_local(evaluation: Evaluation, units: list[Unit], progress=None) -> list[dict]:
    """The local engine: units in order, each model state built once, maps through the cache."""
    outputs: list[dict | None] = [None] * len(units)
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


def write_outputs(result: EvalResult, out: str | Path) -> Path:
    """Per-image tables (Parquet + CSV), ``config.json``, then ``summary.json``, as one set: written into a
    hidden folder beside ``out`` that then replaces ``out`` whole (:func:`trust_core.io.atomic_folder`), so
    ``out`` holds this run's files only — never another run's tables beside this summary — and a run killed
    while writing leaves the previous results untouched. A folder holding anything but results is refused
    (:func:`~trust_core.evaluate.outputs.check_results_folder`; the CLI also refuses results without
    ``--overwrite``). ``summary.json`` states what was skipped (``dataset.skipped``: counts by reason;
    ``dataset.unreadable``: each unreadable film and why) and the smallest n that decides a verdict.
    """
    from ..io import atomic_folder
    from ..metrics.stats import MIN_PAIRED_N
    from .outputs import check_results_folder

    out = check_results_folder(out, overwrite=True)
    described = result.config.get("dataset", {}) if isinstance(result.config, dict) else {}
    summary = {**result.summary, "stats": result.stats}
    summary["dataset"] = {**summary.get("dataset", {}), "skipped": described.get("skipped", {}),
                          "unreadable": described.get("unreadable", {})}
    summary.setdefault("verdict_min_n", MIN_PAIRED_N)
    # every file of the set: what a later --overwrite may replace (a user's file beside them never is)
    summary["files"] = sorted([f"{name}{suffix}" for name in result.tables for suffix in (".parquet", ".csv")]
                              + ["config.json", "summary.json"])
    with atomic_folder(out) as folder:
        for name, table in result.tables.items():
            for suffix, writer in ((".parquet", lambda t, p: t.to_parquet(p, index=False)),
                                   (".csv", lambda t, p: t.to_csv(p, index=False))):
                with atomic_path(folder / f"{name}{suffix}") as tmp:
                    writer(table, tmp)
        atomic_write(folder / "config.json", json.dumps(result.config, indent=2, default=_json_default))
        atomic_write(folder / "summary.json", json.dumps(summary, indent=2, default=_json_default))
    return out


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


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
