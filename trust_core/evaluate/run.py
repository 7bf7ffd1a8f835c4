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
from functools import partial
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
from ..metrics import (PAPER_DATA_RANGE, auprc_batch, compare_paired, holm, one_sided_below, paired_test,
                       ssim_batch, summarize)
from ..models.checkpoint import load
from ..models.info import info_of
from ..randomization.cascade import StateModels, model_seed
from ..saliency import PRESETS, explain, explain_for_classes, predicted_classes, resolve_methods, resolve_params
from ..saliency.registry import PAPER_PRESET
from ..saliency.postprocess import minmax_maps
from .verdicts import VERDICT_RULE
from .criteria import (CLIPPED, CRITERIA, MAP_FORMS, UNCLIPPED, PAPER_CRITERIA, CriterionResult, resolve_criteria,  # one owner of the names
                       resolve_scored_maps, scored_form)
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
            empty = [i for i in self.utility_ids + self.tuning_ids if not self._masks([i]).any()]
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
        # the maps, read back from the spool when a criterion asks; sMPRT's noisy copies apart
        forms = {CLIPPED: spool.maps(CLIPPED_FORM), UNCLIPPED: spool.maps(UNCLIPPED_FORM)}
        noisy = {CLIPPED: spool.maps(CLIPPED_FORM, noise=True), UNCLIPPED: spool.maps(UNCLIPPED_FORM, noise=True)}
        maps = forms[CLIPPED]

        def scored(key):  # the maps a criterion scores: the form its authors score, or the departure asked for
            return forms[scored_form(key, self.scored_maps)]

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
        localizer = self._localizer_baselines(criteria)
        if "utility" in criteria:
            tables.update(self._utility(scored("utility"), flags, stats, state_index, localizer, summary))
        for name in ("pointing_game", "energy_pointing_game", "miou"):
            if name in criteria:
                tables.update(self._localization(name, scored(name), flags, summary))
        if "randomization" in criteria:
            tables.update(self._randomization(scored("randomization"), state_index, summary))
        for name in ("spearman", "hog"):
            if name in criteria:
                tables.update(self._randomization(scored(name), state_index, summary, key=name))
        if "emprt" in criteria:
            tables.update(self._emprt(scored("emprt"), state_index, summary))
        if "data_randomization" in criteria:
            tables.update(self._data_randomization(scored("data_randomization"), summary))
        if "smprt" in criteria:
            tables.update(self._smprt(scored("smprt"), noisy[scored_form("smprt", self.scored_maps)], state_index,
                                      summary))
        for name, pairs in (("repeatability", [(0, i) for i in self.replicates[1:]]),
                            ("reproducibility", [(0, i) for i in self.others])):
            if name in criteria:
                tables.update(self._agreement(name, pairs, scored(name), localizer, summary))
        for key, block in summary["criteria"].items():  # what each criterion scored, said in its results
            form = scored_form(key, self.scored_maps)
            block["scored_maps"] = form
            block["scored_maps_note"] = MAP_FORMS[form] + (
                " — a departure from the criterion's default" if key in self.scored_maps else "")
            if CRITERIA[key].family in ("randomization",):
                block["explained_class"] = RANDOMIZATION_CLASSES[self.config.randomization_class]
        if localizer["agreement"] is not None:
            tables["localizer_agreement"] = pd.DataFrame({"image_id": self.ssim_ids, "ssim": localizer["agreement"]})
        elif criteria & {"repeatability", "reproducibility"}:
            tables["localizer_agreement"] = pd.DataFrame(columns=["image_id", "ssim"])
        # every block through its typed result (the registry's keys, the fields each result must have)
        summary["criteria"] = {k: CriterionResult.from_block(k, block).as_dict()
                               for k, block in summary["criteria"].items()}
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

    def _localizer_baselines(self, criteria: set) -> dict:
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
                    out["agreement"] = self._ssim(a, b)
                    out["agreement_pair"] = f"{same[0][1]} vs {same[1][1]}"
                    break
        return out

    # -- criteria ----------------------------------------------------------------------------------
    def _model_label(self, model_index: int) -> str:
        return f"{self.arches[model_index]}#{model_index}"

    def _utility(self, maps, flags, stats, state_index, localizer, summary) -> dict[str, pd.DataFrame]:
        ids = self.utility_ids
        masks = self._masks(ids)
        original, original_flags = maps[(0, "original")], flags[(0, "original")]
        per_method = {m: self._auprc(np.stack([original[i][m] for i in ids]), masks) for m in self.methods}
        rows = []
        for m, values in per_method.items():
            negative = [((stats.get((0, "original"), {}).get(i) or {}).get(m) or {}).get("negative_fraction")
                        for i in ids]
            rows += [{"image_id": i, "method": m, "auprc": v, "flag": original_flags[i][m],
                      "xrai_negative_fraction": np.nan if f is None else f}
                     for i, v, f in zip(ids, values, negative)]
        baselines = {"average_mask": self._average_mask_auprc(masks)}
        if localizer["utility_maps"] is not None:
            baselines["localizer"] = self._auprc(localizer["utility_maps"], masks)
        base_rows = [{"image_id": i, "baseline": b, "auprc": float(v)} for b, vals in baselines.items()
                     for i, v in zip(ids, vals)]
        low, high = baselines["average_mask"], baselines.get("localizer")
        p_low = {m: paired_test(v, low, alternative="greater").p_value for m, v in per_method.items()}
        p_high = ({m: paired_test(v, high, alternative="two-sided").p_value for m, v in per_method.items()}
                  if high is not None else {})
        p_low_holm = dict(zip(p_low, holm(list(p_low.values()))))
        p_high_holm = dict(zip(p_high, holm(list(p_high.values())))) if p_high else {}
        entries = {}
        for m, values in per_method.items():
            s = summarize(values, seed=self.config.bootstrap_seed)
            vs_low = compare_paired(values, low, better=_better("utility"), seed=self.config.bootstrap_seed)
            entry = {**s.as_dict(), "baseline_low": vs_low.baseline,
                     "baseline_high": _paired_mean(high, values) if high is not None else None,
                     "difference": vs_low.difference, "difference_ci": [vs_low.ci_low, vs_low.ci_high],
                     "p_vs_low": p_low[m], "p_vs_low_holm": p_low_holm[m],
                     "p_vs_high": p_high.get(m), "p_vs_high_holm": p_high_holm.get(m),
                     "n_paired": vs_low.n, "verdict": vs_low.verdict,
                     "paper_rule": _point_rule(vs_low.mean > vs_low.baseline, vs_low.n)}
            if m == "xrai":
                fractions = np.array([r["xrai_negative_fraction"] for r in rows if r["method"] == "xrai"], float)
                entry["negative_fraction_mean"] = float(np.nanmean(fractions)) if np.isfinite(fractions).any() \
                    else None
            entries[m] = entry
        by_model, model_rows = self._utility_by_model(maps, state_index)
        summary["criteria"]["utility"] = {
            "metric": "AUPRC", "n_images": len(ids), "methods": entries, "by_model": by_model,
            "baselines": {b: summarize(v, seed=self.config.bootstrap_seed).as_dict() for b, v in baselines.items()},
            "high_baseline_source": localizer["utility_source"],
            "rule": "pass: the 95 % CI of the paired AUPRC difference to the average-mask baseline lies above 0 "
                    "(fail: below 0; else inconclusive). Paired Wilcoxon p against the low (one-sided) and "
                    "high (two-sided) baselines, Holm-corrected across methods, are reported beside.",
            "paper_rule": "mean AUPRC > the average-mask baseline's mean"}
        return {"utility": pd.DataFrame(rows), "utility_baselines": pd.DataFrame(base_rows),
                "utility_by_model": model_rows}

    def _auprc(self, stack: np.ndarray, masks: np.ndarray) -> np.ndarray:
        finite = np.isfinite(stack).all(axis=(1, 2))
        values = np.full(len(stack), np.nan)
        if finite.any():
            values[finite] = auprc_batch(torch.from_numpy(stack[finite]), torch.from_numpy(masks[finite])).numpy()
        return values

    def _utility_by_model(self, maps, state_index) -> tuple[list[dict], pd.DataFrame]:
        """AUPRC of every model state that has maps of positive images: each replicate and the other
        architecture (on the utility images) and each randomized state (on the SSIM images) — the
        paper's trained and "untrained" rows (Fig. 2)."""
        positives = set(self.utility_ids) | set(self.ssim_ids)
        rows, entries = [], []
        for (model_index, state), state_maps in sorted(maps.items(), key=lambda kv: (kv[0][0], state_index.get(kv[0][1], 0))):
            if model_index >= self.trained:  # a shuffled-label model is data_randomization's, not a trained row
                continue
            ids = sorted(i for i in state_maps if i in positives)
            if state == "original":
                ids = [i for i in ids if i in set(self.utility_ids)] or ids
            if not ids:
                continue
            masks = self._masks(ids)
            for m in self.methods:
                values = self._auprc(np.stack([state_maps[i][m] for i in ids]), masks)
                rows += [{"model": model_index, "arch": self.arches[model_index], "state": state,
                          "state_index": state_index.get(state, 0), "image_id": i, "method": m, "auprc": v}
                         for i, v in zip(ids, values)]
                s = summarize(values, seed=self.config.bootstrap_seed)
                entries.append({"model": self._model_label(model_index), "state": state,
                                "state_index": state_index.get(state, 0), "method": m, "mean": s.mean,
                                "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n, "excluded": s.excluded})
        return entries, pd.DataFrame(rows, columns=["model", "arch", "state", "state_index", "image_id", "method",
                                                    "auprc"])

    def _masks(self, ids: list[str]) -> np.ndarray:
        """Ground-truth masks (N, S, S) at the classifiers' size, each read and rasterized once per run."""
        for i in ids:
            if i not in self._gt:
                self._gt[i] = self.dataset.mask(i, self.size, self.resize)
        return np.stack([self._gt[i] for i in ids])

    def _prior(self) -> np.ndarray:
        """The average ground-truth mask of train+val (the low baseline of every localization criterion)."""
        if getattr(self, "_prior_mask", None) is None:  # stored beside the split file, read on reruns
            from .baseline import average_mask

            self._prior_mask = average_mask(self.dataset, self.size, self.resize)
        return self._prior_mask

    def _average_mask_auprc(self, masks: np.ndarray) -> np.ndarray:
        prior = self._prior()
        return auprc_batch(torch.from_numpy(np.repeat(prior[None], len(masks), 0)), torch.from_numpy(masks)).numpy()

    def _ssim(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-image SSIM of stacks (N, H, W); NaN where either map is flagged."""
        out = np.full(len(a), np.nan)
        ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
        if ok.any():
            out[ok] = ssim_batch(torch.from_numpy(a[ok]), torch.from_numpy(b[ok]),
                                 data_range=self.config.data_range).numpy()
        return out

    def _partners(self) -> list[np.ndarray]:
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

    def _randomization(self, maps, state_index, summary, key: str = "randomization") -> dict[str, pd.DataFrame]:
        """The model-randomization test under one similarity: SSIM (the paper's ``randomization``), Spearman
        rank correlation (``spearman``) or HOG similarity (``hog``); same states, images and baseline rule."""
        ids = self.ssim_ids
        similar = self._ssim if key == "randomization" else partial(self._similarity, key)
        label = {"randomization": "SSIM", "spearman": "Spearman ρ", "hog": "HOG similarity"}[key]
        independent = self.config.randomization_mode == "independent"
        rows, base_rows = [], []
        partners = self._partners()
        for model_index in self.replicates:
            reference = maps[(model_index, "original")]
            for (mi, state), state_maps in maps.items():
                if mi != model_index or state == "original":
                    continue
                for m in self.methods:
                    values = similar(np.stack([reference[i][m] for i in ids]), np.stack([state_maps[i][m] for i in ids]))
                    rows += [{"model": model_index, "state": state, "state_index": state_index[state], "image_id": i,
                              "method": m, "ssim": v} for i, v in zip(ids, values)]
            # Random-pair baseline of this replicate: its own original maps of two different images.
            for m in self.methods:
                stack = np.stack([reference[i][m] for i in ids])
                for k, image_id in enumerate(ids):
                    if not partners[k].size:
                        continue
                    values = similar(np.repeat(stack[k][None], len(partners[k]), 0), stack[partners[k]])
                    base_rows.append({"model": model_index, "image_id": image_id, "method": m,
                                      "ssim": float(np.nanmean(values)) if np.isfinite(values).any() else np.nan,
                                      "pairs": int(np.isfinite(values).sum())})
        table = pd.DataFrame(rows, columns=["model", "state", "state_index", "image_id", "method", "ssim"])
        baseline = pd.DataFrame(base_rows, columns=["model", "image_id", "method", "ssim", "pairs"])
        last = max(state_index.values()) if state_index else 0
        entries = {}
        for m in self.methods:
            sub = table[table.method == m]
            curve = (sub.groupby(["state_index", "state"]).ssim.agg(["mean", "std", "count"]).reset_index()
                     .sort_values("state_index"))
            per_replicate = sub.groupby(["state_index", "model"]).ssim.mean().unstack()
            # per image: the mean over the replicates where both the state's SSIM and that replicate's
            # random-pair baseline exist, so both sides average the same replicates
            base_m = baseline[baseline.method == m][["model", "image_id", "ssim"]].rename(columns={"ssim": "base"})
            comparisons, per_state = {}, {}
            for name in curve.state:
                paired = sub[sub.state == name].merge(base_m, on=["model", "image_id"]).dropna(subset=["ssim", "base"])
                means = paired.groupby("image_id")[["ssim", "base"]].mean().reindex(ids)
                per_state[name] = means.ssim.to_numpy()
                comparisons[name] = compare_paired(means.ssim.to_numpy(), means.base.to_numpy(), better=_better(key),
                                                   seed=self.config.bootstrap_seed)
            if independent and comparisons:
                decisive = max(comparisons, key=lambda n: (comparisons[n].mean if comparisons[n].n else -np.inf))
                verdicts = [c.verdict for c in comparisons.values()]
                verdict = "fail" if "fail" in verdicts else "pass" if all(v == "pass" for v in verdicts) \
                    else "inconclusive"
                paper_rule = _point_rule(all(c.n and c.mean < c.baseline for c in comparisons.values()),
                                         min(c.n for c in comparisons.values()))
            else:
                decisive = curve.state.iloc[-1] if len(curve) else None
                verdict = comparisons[decisive].verdict if decisive else "inconclusive"
                c = comparisons.get(decisive)
                paper_rule = _point_rule(bool(c and c.mean < c.baseline), c.n if c else 0)
            final = per_state.get(decisive, np.full(len(ids), np.nan))
            c = comparisons.get(decisive)
            s = summarize(final, seed=self.config.bootstrap_seed)
            entry = {**s.as_dict(), "baseline": c.baseline if c else float("nan"),
                     "difference": c.difference if c else float("nan"),
                     "difference_ci": [c.ci_low, c.ci_high] if c else [float("nan")] * 2,
                     "n_paired": c.n if c else 0, "final_state": decisive, "verdict": verdict,
                     "paper_rule": paper_rule,
                     "states": {name: comp.as_dict() for name, comp in comparisons.items()},
                     "curve": [{"state": r.state, "state_index": int(r.state_index), "mean": float(r["mean"]),
                                "std": float(per_replicate.loc[r.state_index].std()) if per_replicate.shape[1] > 1
                                else float(r["std"]), "n": int(r["count"])} for _, r in curve.iterrows()]}
            if self.config.ttest:
                entry["ttest_p"] = one_sided_below(final, entry["baseline"]).p_value
            entries[m] = entry
        rule = ("independent: every block randomized alone must bring the maps below the random-pair baseline "
                "(pass: each block's 95 % CI of SSIM − baseline below 0; fail: any block's above 0); the "
                "headline is the least sensitive block" if independent else
                "cascading: pass when the 95 % CI of SSIM(original, fully randomized) − random-pair baseline "
                "lies below 0 (fail: above 0; else inconclusive)")
        if key != "randomization":
            rule = rule.replace("SSIM", label)
        summary["criteria"][key] = {
            "metric": label, "n_images": len(ids), "replicates": len(self.replicates),
            "mode": self.config.randomization_mode, "init": self.config.randomization_init, "methods": entries,
            "baseline": f"mean {label} between original maps of two different images ({self.config.baseline_pairs} "
                        f"partners per image), per replicate, averaged over the same replicates as the states",
            "rule": rule, "paper_rule": (f"mean {label} at the fully randomized state < the random-pair baseline's mean"
                                         + (" (for every block)" if independent else "")) if key == "randomization"
            else None, "last_state_index": last}
        if key == "randomization":
            return {"randomization": table, "randomization_baseline": baseline}
        for entry in entries.values():
            entry["paper_rule"] = None  # the paper tested SSIM only
        return {f"randomization_{key}": table.rename(columns={"ssim": key}),
                f"randomization_{key}_baseline": baseline.rename(columns={"ssim": key})}

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

    def _smprt(self, maps, noisy, state_index, summary) -> dict[str, pd.DataFrame]:
        """sMPRT (Hedström et al. 2023): MPRT on denoised maps — each the mean of the maps of the image and of
        smprt_samples − 1 noisy copies — by Spearman correlation of the original and fully randomized states,
        against the random-pair baseline of the denoised original maps; per replicate, then averaged."""
        ids = self.ssim_ids
        last = max(state_index.values()) if state_index else 0
        final = next((s for s, k in state_index.items() if k == last), None)
        partners = self._partners()

        def denoised(model_index, state, m):
            stacks = [np.stack([maps[(model_index, state)][i][m] for i in ids])]
            extra_maps = noisy.get((model_index, state), {})
            stacks += [np.stack([extra_maps[i][m][k] for i in ids]) for k in range(self.config.smprt_samples - 1)]
            return np.mean(stacks, axis=0)  # NaN where any copy's map is flagged

        rows, entries = [], {}
        for m in self.methods:
            values_by_replicate, base_by_replicate = [], []
            for model_index in self.replicates:
                if final is None or (model_index, final) not in maps:
                    continue
                a, b = denoised(model_index, "original", m), denoised(model_index, final, m)
                values = self._similarity("spearman", a, b)
                base = np.full(len(ids), np.nan)
                for j in range(len(ids)):
                    if partners[j].size:
                        pair = self._similarity("spearman", np.repeat(a[j][None], len(partners[j]), 0), a[partners[j]])
                        base[j] = np.nanmean(pair) if np.isfinite(pair).any() else np.nan
                values_by_replicate.append(values)
                base_by_replicate.append(base)
                rows += [{"model": model_index, "state": final, "image_id": i, "method": m, "spearman": v,
                          "baseline": w} for i, v, w in zip(ids, values, base)]
            with np.errstate(all="ignore"):
                values = np.nanmean(np.stack(values_by_replicate), 0) if values_by_replicate else np.full(len(ids), np.nan)
                base = np.nanmean(np.stack(base_by_replicate), 0) if base_by_replicate else np.full(len(ids), np.nan)
            s = summarize(values, seed=self.config.bootstrap_seed)
            c = compare_paired(values, base, better=_better("smprt"), seed=self.config.bootstrap_seed)
            entries[m] = {**s.as_dict(), "baseline": c.baseline, "difference": c.difference,
                          "difference_ci": [c.ci_low, c.ci_high], "n_paired": c.n, "verdict": c.verdict,
                          "paper_rule": None, "final_state": final}
        criterion = CRITERIA["smprt"]
        summary["criteria"]["smprt"] = {
            "metric": criterion.metric, "n_images": len(ids), "replicates": len(self.replicates), "methods": entries,
            "samples": self.config.smprt_samples, "noise": self.config.smprt_noise, "baseline": criterion.baseline,
            "rule": criterion.rule + " (fail: above 0; else inconclusive)", "paper_rule": None}
        return {"smprt": pd.DataFrame(rows, columns=["model", "state", "image_id", "method", "spearman", "baseline"])}

    def _data_randomization(self, maps, summary) -> dict[str, pd.DataFrame]:
        """Adebayo et al.'s data randomization test: per image, SSIM between the first model's map and the map
        of each model trained on shuffled labels (averaged over them), against the first model's random-pair
        baseline; pass when the paired 95 % CI lies below 0 (the maps differ as much as maps of different
        images)."""
        ids = self.ssim_ids
        partners = self._partners()
        reference = maps[(0, "original")]
        rows, base_rows, entries = [], [], {}
        for m in self.methods:
            stack = np.stack([reference[i][m] for i in ids])
            per_model = []
            for k in self.shuffled:
                values = self._ssim(stack, np.stack([maps[(k, "original")][i][m] for i in ids]))
                per_model.append(values)
                rows += [{"model": k, "image_id": i, "method": m, "ssim": v} for i, v in zip(ids, values)]
            base = np.full(len(ids), np.nan)
            for j in range(len(ids)):
                if partners[j].size:
                    values = self._ssim(np.repeat(stack[j][None], len(partners[j]), 0), stack[partners[j]])
                    base[j] = np.nanmean(values) if np.isfinite(values).any() else np.nan
            base_rows += [{"image_id": i, "method": m, "ssim": v} for i, v in zip(ids, base)]
            values = np.nanmean(np.stack(per_model), 0) if per_model else np.full(len(ids), np.nan)
            s = summarize(values, seed=self.config.bootstrap_seed)
            c = compare_paired(values, base, better=_better("data_randomization"), seed=self.config.bootstrap_seed)
            entries[m] = {**s.as_dict(), "baseline": c.baseline, "difference": c.difference,
                          "difference_ci": [c.ci_low, c.ci_high], "n_paired": c.n, "verdict": c.verdict,
                          "paper_rule": None}
        criterion = CRITERIA["data_randomization"]
        summary["criteria"]["data_randomization"] = {
            "metric": "SSIM", "n_images": len(ids), "methods": entries, "shuffled_models":
            [self.model_paths[k] for k in self.shuffled], "baseline": criterion.baseline,
            "rule": criterion.rule + " (fail: above 0; else inconclusive)", "paper_rule": None}
        return {"data_randomization": pd.DataFrame(rows, columns=["model", "image_id", "method", "ssim"]),
                "data_randomization_baseline": pd.DataFrame(base_rows, columns=["image_id", "method", "ssim"])}

    def _similarity(self, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-image Spearman or HOG similarity of stacks (N, H, W); NaN where either map is flagged."""
        from ..metrics import extra

        out = np.full(len(a), np.nan)
        ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
        if ok.any():
            out[ok] = (extra.spearman if name == "spearman" else extra.hog_similarity)(a[ok], b[ok])
        return out

    def _localization(self, name: str, maps, flags, summary) -> dict[str, pd.DataFrame]:
        """Pointing game, energy pointing game or CheXlocalize's mIoU of the first model's maps on the utility
        images, against the average-mask prior of train+val scored the same way (paired bootstrap CI)."""
        from ..metrics import extra

        ids = self.utility_ids
        masks = self._masks(ids)
        prior = self._prior()
        original = maps[(0, "original")]
        thresholds: dict[str, float] = {}
        # tied maxima: a hit when any is inside (Quantus) on the unclipped map; on the clipped map (~1 % of the
        # pixels tie at 1.0) their share inside, the expected hit of a random tie break
        ties = "any" if scored_form(name, self.scored_maps) == UNCLIPPED else "share"

        def score(stack: np.ndarray, key: str) -> np.ndarray:
            out = np.full(len(stack), np.nan)
            ok = np.isfinite(stack).all(axis=(1, 2))
            if not ok.any():
                return out
            if name == "pointing_game":
                out[ok] = extra.pointing_game(stack[ok], masks[ok], ties=ties)
            elif name == "energy_pointing_game":
                out[ok] = extra.energy_pointing_game(stack[ok], masks[ok])
            else:
                tuning = np.stack([original[i][key] for i in self.tuning_ids]) if key != "average_mask" else \
                    np.repeat(prior[None], len(self.tuning_ids), 0)
                keep = np.isfinite(tuning).all(axis=(1, 2))
                thresholds[key], _means = extra.tune_threshold(tuning[keep], self._masks(self.tuning_ids)[keep])
                out[ok] = extra.iou_at(stack[ok], masks[ok], thresholds[key])
            return out

        base = score(np.repeat(prior[None], len(ids), 0), "average_mask")
        rows, entries = [], {}
        criterion = CRITERIA[name]
        for m in self.methods:
            values = score(np.stack([original[i][m] for i in ids]), m)
            rows += [{"image_id": i, "method": m, name: v, "flag": flags[(0, "original")][i][m]}
                     for i, v in zip(ids, values)]
            s = summarize(values, seed=self.config.bootstrap_seed)
            c = compare_paired(values, base, better=_better(name), seed=self.config.bootstrap_seed)
            entries[m] = {**s.as_dict(), "baseline": c.baseline, "difference": c.difference,
                          "difference_ci": [c.ci_low, c.ci_high], "n_paired": c.n, "verdict": c.verdict,
                          "paper_rule": None, **({"threshold": thresholds[m]} if m in thresholds else {})}
        summary["criteria"][name] = {
            "metric": criterion.metric, "n_images": len(ids), "methods": entries,
            "baselines": {"average_mask": summarize(base, seed=self.config.bootstrap_seed).as_dict()},
            "baseline": criterion.baseline, "rule": criterion.rule + " (else inconclusive)", "paper_rule": None,
            **({"ties": ties} if name == "pointing_game" else {}),
            **({"thresholds": thresholds, "tuning_images": len(self.tuning_ids), "binarization": "map > threshold",
                "threshold_grid": list(extra.MIOU_THRESHOLDS)} if name == "miou" else {})}
        baseline_rows = [{"image_id": i, "baseline": "average_mask", name: v} for i, v in zip(ids, base)]
        return {name: pd.DataFrame(rows), f"{name}_baselines": pd.DataFrame(baseline_rows)}

    def _emprt(self, maps, state_index, summary) -> dict[str, pd.DataFrame]:
        """eMPRT (Hedström et al. 2023): per image, the rise of the map's discrete entropy from the original to
        the fully randomized state, (H₁ − H₀) / H₀, averaged over the replicates; pass when its CI lies above 0."""
        from ..metrics import extra

        ids = self.ssim_ids
        last = max(state_index.values()) if state_index else 0
        final = next((st for st, k in state_index.items() if k == last), None)
        rows, entries = [], {}
        for m in self.methods:
            per_replicate = []
            for model_index in self.replicates:
                if last == 0 or (model_index, final) not in maps:
                    continue
                a = np.stack([maps[(model_index, "original")][i][m] for i in ids])
                b = np.stack([maps[(model_index, final)][i][m] for i in ids])
                values = np.full(len(ids), np.nan)
                ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
                if ok.any():
                    values[ok] = extra.emprt(a[ok], b[ok])
                per_replicate.append(values)
                rows += [{"model": model_index, "state": final, "image_id": i, "method": m, "emprt": v}
                         for i, v in zip(ids, values)]
            values = np.nanmean(np.stack(per_replicate), 0) if per_replicate else np.full(len(ids), np.nan)
            s = summarize(values, seed=self.config.bootstrap_seed)
            c = compare_paired(values, np.zeros(len(ids)), better=_better("emprt"), seed=self.config.bootstrap_seed)
            entries[m] = {**s.as_dict(), "baseline": 0.0, "difference": c.difference,
                          "difference_ci": [c.ci_low, c.ci_high], "n_paired": c.n, "verdict": c.verdict,
                          "paper_rule": None, "final_state": final}
        criterion = CRITERIA["emprt"]
        summary["criteria"]["emprt"] = {
            "metric": criterion.metric, "n_images": len(ids), "replicates": len(self.replicates), "methods": entries,
            "baseline": criterion.baseline, "rule": criterion.rule + " (else inconclusive)", "paper_rule": None,
            "bins": extra.ENTROPY_BINS}
        return {"emprt": pd.DataFrame(rows, columns=["model", "state", "image_id", "method", "emprt"])}

    def _agreement(self, name, pairs, maps, localizer, summary) -> dict[str, pd.DataFrame]:
        ids = self.ssim_ids
        rows = []
        for a, b in pairs:
            for m in self.methods:
                values = self._ssim(np.stack([maps[(a, "original")][i][m] for i in ids]),
                                    np.stack([maps[(b, "original")][i][m] for i in ids]))
                rows += [{"criterion": name, "pair": f"{a}-{b}", "image_id": i, "method": m, "ssim": v}
                         for i, v in zip(ids, values)]
        table = pd.DataFrame(rows, columns=["criterion", "pair", "image_id", "method", "ssim"])
        base = localizer["agreement"]
        entries = {}
        for m in self.methods:
            if not pairs:
                entries[m] = None
                continue
            values = table[table.method == m].groupby("image_id").ssim.mean().reindex(ids).to_numpy()
            s = summarize(values, seed=self.config.bootstrap_seed)
            entry = {**s.as_dict(), "baseline": None, "verdict": "inconclusive", "paper_rule": None,
                     "reason": "no localizer baseline (give two localizers)"}
            if base is not None:
                c = compare_paired(values, base, better=_better(name), seed=self.config.bootstrap_seed)
                entry.update(baseline=c.baseline, difference=c.difference, difference_ci=[c.ci_low, c.ci_high],
                             n_paired=c.n, verdict=c.verdict, paper_rule=_point_rule(c.mean >= c.baseline, c.n),
                             reason=None)
            entries[m] = entry
        summary["criteria"][name] = {
            "metric": "SSIM", "n_images": len(ids), "pairs": [f"{self._model_label(a)} vs {self._model_label(b)}"
                                                              for a, b in pairs],
            "methods": entries, "available": bool(pairs),
            "baseline": summarize(base, seed=self.config.bootstrap_seed).as_dict() if base is not None else None,
            "baseline_pair": localizer["agreement_pair"],
            "rule": "pass: the 95 % CI of the paired SSIM difference to the SSIM between two localizers trained "
                    "with different seeds lies above 0 (fail: below 0; else inconclusive)",
            "paper_rule": "mean SSIM ≥ the two localizers' mean SSIM"}
        return {name: table}

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


def _better(criterion: str) -> str:
    """The passing side of a criterion's paired difference, from the registry."""
    return "greater" if CRITERIA[criterion].higher_is_better else "less"


def _paired_mean(values: np.ndarray, partner: np.ndarray) -> float:
    """Mean of ``values`` over the images where both arrays are finite (the same images as its partner's)."""
    keep = np.isfinite(values) & np.isfinite(partner)
    return float(values[keep].mean()) if keep.any() else float("nan")


def _point_rule(passed, n: int = 1) -> str | None:
    """The paper's point-estimate rule, kept beside the verdict: 'pass', 'fail', or None without data."""
    if not n:
        return None
    return "pass" if passed else "fail"


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
