"""The four trust criteria over a dataset (protocol.md sections 1, 3, 4, 6).

Work is split into independent **units** — one model state × a group of images, all methods — so that
it can be spread over workers (see ``engine=``) and so that every finished unit lands in the map cache at
once: a killed run resumes where it stopped and reaches identical results (maps are deterministic and
content-addressed). Metrics are cheap and recomputed from the maps.

Criteria and their baselines:

* **utility** — per-image AUPRC on the positive test images; low baseline: the average ground-truth mask
  of train+val scored the same way; high baseline: a localizer's score maps (U-Net or user maps).
  Pass: mean AUPRC above the low baseline's and significantly so (paired Wilcoxon, p < 0.005).
* **randomization** — SSIM(map of the original, map after cascading randomization) per state and image,
  for every replicate of the main architecture; baseline: mean SSIM between original maps of two
  different images (``baseline_pairs`` random partners per image). Pass: SSIM at the fully randomized
  state below the baseline (optionally the one-sided t-test of Venkatesh et al. 2024).
* **repeatability / reproducibility** — per-image SSIM between maps of two replicates of one
  architecture / of two architectures; high baseline: SSIM between two localizers trained with different
  seeds. Pass: mean SSIM at least the baseline's.
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

from ..cache.store import Store
from ..data.datasets import RadiographDataset
from ..data.transforms import resize_image, to_model_input
from ..errors import ConfigError
from ..io import atomic_path, atomic_write
from ..metrics import auprc_batch, one_sided_below, paired_test, ssim_batch, summarize
from ..models.checkpoint import load
from ..randomization.cascade import cascade, model_seed
from ..saliency import explain, resolve_methods, resolve_params

CRITERIA = ("utility", "randomization", "repeatability", "reproducibility")
P_THRESHOLD = 0.005


@dataclass(frozen=True)
class EvalConfig:
    """Everything an evaluation depends on; recorded in ``config.json``."""

    methods: tuple[str, ...] | None = None
    preset: str = "arun2021"
    overrides: dict = field(default_factory=dict)
    criteria: tuple[str, ...] = CRITERIA
    utility_split: str = "test"
    utility_limit: int | None = None
    ssim_images: int = 100
    ssim_seed: int = 1
    baseline_pairs: int = 50
    data_range: float = 2.0
    randomization_mode: str = "cascading"
    randomization_init: str = "reset"
    randomization_seed: int = 0
    ttest: bool = False
    precision: str = "fp32"
    device: str | None = None
    batch_size: int | None = None
    group: int = 4
    bootstrap_seed: int = 0


@dataclass(frozen=True)
class Unit:
    """One model state × a group of images: the unit of work and of caching."""

    model_index: int
    state: str
    state_index: int
    image_ids: tuple[str, ...]


@dataclass
class EvalResult:
    tables: dict[str, pd.DataFrame]
    summary: dict
    config: dict
    stats: dict


class Evaluation:
    """A planned evaluation: models, image sets, units; run it with :meth:`run`."""

    def __init__(self, dataset: RadiographDataset, model_paths: list[str | Path], config: EvalConfig = EvalConfig(),
                 *, localizers: list[str | Path] = (), localizer_maps: str | Path | None = None,
                 cache: Store | None = None):
        if not model_paths:
            raise ConfigError("at least one model checkpoint is needed")
        unknown = [c for c in config.criteria if c not in CRITERIA]
        if unknown:
            raise ConfigError(f"unknown criteria {unknown}; choose from {CRITERIA}")
        self.config = config
        self.methods = resolve_methods(config.methods)
        self.params = resolve_params(config.preset, **config.overrides)
        self.dataset = dataset
        self.model_paths = [str(p) for p in model_paths]
        self.models = [load(p, num_classes=2) for p in model_paths]  # the datasets are binary
        self.arches = [m.trust_arch for m in self.models]
        self.size = int(self.models[0].trust_meta.get("input_size") or 320)
        self.localizer_paths = [str(p) for p in localizers]
        self.localizer_maps = localizer_maps
        self.cache = cache
        positives = dataset.ids(split=config.utility_split, label=1)
        if not positives:
            raise ConfigError(f"no positive image in the {config.utility_split!r} split to evaluate")
        self.utility_ids = positives[: config.utility_limit] if config.utility_limit else positives
        rng = np.random.default_rng(config.ssim_seed)
        count = min(config.ssim_images, len(positives))
        self.ssim_ids = sorted(rng.choice(positives, size=count, replace=False).tolist())
        self.replicates = [i for i, a in enumerate(self.arches) if a == self.arches[0]]
        self.others = [i for i, a in enumerate(self.arches) if a != self.arches[0]]
        self._images: dict[tuple[str, int], torch.Tensor] = {}

    # -- planning ----------------------------------------------------------------------------------
    def units(self) -> list[Unit]:
        """Every unit of this evaluation, in execution order."""
        criteria = set(self.config.criteria)
        plan: list[tuple[int, str, int, list[str]]] = []
        first_ids = sorted(set(self.utility_ids if "utility" in criteria else [])
                           | set(self.ssim_ids if criteria - {"utility"} else []))
        plan.append((0, "original", 0, first_ids))
        needs_original = set()
        if "randomization" in criteria:
            needs_original |= set(self.replicates)
        if "repeatability" in criteria:
            needs_original |= set(self.replicates)
        if "reproducibility" in criteria:
            needs_original |= set(self.others)
        for i in sorted(needs_original - {0}):
            plan.append((i, "original", 0, self.ssim_ids))
        if "randomization" in criteria:
            from ..randomization.cascade import states
            for i in self.replicates:
                for state in states(self.arches[i], mode=self.config.randomization_mode)[1:]:
                    plan.append((i, state.name, state.index, self.ssim_ids))
        g = self.config.group
        return [Unit(i, name, k, tuple(ids[s:s + g])) for i, name, k, ids in plan for s in range(0, len(ids), g)]

    # -- execution ---------------------------------------------------------------------------------
    def _input(self, image_id: str, size: int) -> torch.Tensor:
        key = (image_id, size)
        if key not in self._images:
            self._images[key] = to_model_input(self.dataset.image(image_id, size))
        return self._images[key]

    def _state_models(self, model_index: int):
        """Original and randomized copies of one model, by state name (lazily, in cascade order)."""
        model = self.models[model_index]
        return cascade(model, mode=self.config.randomization_mode, init=self.config.randomization_init,
                       seed=model_seed(model, self.config.randomization_seed))

    def run_unit(self, unit: Unit, model: torch.nn.Module) -> dict:
        """Maps of one unit (through the cache): ``{image_id: {method: map}}`` plus cache statistics."""
        size = int(model.trust_meta.get("input_size") or self.size) if hasattr(model, "trust_meta") else self.size
        x = torch.stack([self._input(i, size) for i in unit.image_ids])
        result = explain(model, x, methods=self.methods, preset=self.config.preset, device=self.config.device,
                         precision=self.config.precision, cache=self.cache, batch_size=self.config.batch_size,
                         **self.config.overrides)
        maps = {}
        for j, image_id in enumerate(unit.image_ids):
            maps[image_id] = {}
            for m in self.methods:
                value = result[m][j]
                if value.shape != (self.size, self.size):  # another architecture's input size
                    value = resize_image(value, self.size) if np.isfinite(value).all() else np.full(
                        (self.size, self.size), np.nan, np.float32)
                maps[image_id][m] = value
        cached = sum(all(result.from_cache[m][j] for m in self.methods) for j in range(len(unit.image_ids)))
        return {"maps": maps, "flags": {i: {m: result.flags[m][j] for m in self.methods}
                                        for j, i in enumerate(unit.image_ids)},
                "targets": {i: int(result.targets[j]) for j, i in enumerate(unit.image_ids)},
                "passes": result.passes, "cached_images": cached}

    def run(self, *, progress: Callable[[int, int, str], None] | None = None,
            executor: Callable | None = None) -> EvalResult:
        """Run every unit (``executor`` may run them elsewhere, see :func:`run_units_local`) and score."""
        started = time.perf_counter()
        units = self.units()
        outputs = (executor or run_units_local)(self, units, progress)
        return self._score(units, outputs, time.perf_counter() - started)

    # -- scoring -----------------------------------------------------------------------------------
    def _score(self, units: list[Unit], outputs: list[dict], seconds: float) -> EvalResult:
        maps: dict[tuple[int, str], dict[str, dict[str, np.ndarray]]] = {}
        flags: dict[tuple[int, str], dict] = {}
        state_index: dict[str, int] = {}
        for unit, out in zip(units, outputs):
            maps.setdefault((unit.model_index, unit.state), {}).update(out["maps"])
            flags.setdefault((unit.model_index, unit.state), {}).update(out["flags"])
            state_index[unit.state] = unit.state_index
        criteria = set(self.config.criteria)
        tables: dict[str, pd.DataFrame] = {}
        summary: dict = {"criteria": {}, "methods": self.methods, "preset": self.config.preset,
                         "preset_is_paper": self.config.preset == "arun2021"}
        original = maps[(0, "original")]
        if "utility" in criteria:
            tables.update(self._utility(original, flags[(0, "original")], summary))
        if "randomization" in criteria:
            tables.update(self._randomization(maps, state_index, summary))
        for name, pairs in (("repeatability", [(0, i) for i in self.replicates[1:]]),
                            ("reproducibility", [(0, i) for i in self.others])):
            if name in criteria:
                tables.update(self._agreement(name, pairs, maps, summary))
        if criteria & {"repeatability", "reproducibility"}:
            tables.update(self._localizer_agreement(summary))
        stats = {"units": len(units), "passes": int(sum(o["passes"] for o in outputs)),
                 "cached_images": int(sum(o["cached_images"] for o in outputs)),
                 "image_maps": int(sum(len(u.image_ids) for u in units)), "seconds": round(seconds, 1)}
        return EvalResult(tables=tables, summary=summary, config=self.describe(), stats=stats)

    def _utility(self, original, flags, summary) -> dict[str, pd.DataFrame]:
        ids = self.utility_ids
        masks = np.stack([self.dataset.mask(i, self.size) for i in ids])
        rows = []
        per_method = {}
        for m in self.methods:
            stack = np.stack([original[i][m] for i in ids])
            finite = np.isfinite(stack).all(axis=(1, 2))
            values = np.full(len(ids), np.nan)
            if finite.any():
                values[finite] = auprc_batch(torch.from_numpy(stack[finite]), torch.from_numpy(masks[finite])).numpy()
            per_method[m] = values
            rows += [{"image_id": i, "method": m, "auprc": v, "flag": flags[i][m]} for i, v in zip(ids, values)]
        baselines = {"average_mask": self._average_mask_auprc(masks)}
        high = self._localizer_maps(ids)
        if high is not None:
            baselines["localizer"] = auprc_batch(torch.from_numpy(high), torch.from_numpy(masks)).numpy()
        base_rows = [{"image_id": i, "baseline": b, "auprc": float(v)} for b, vals in baselines.items()
                     for i, v in zip(ids, vals)]
        low_mean = float(np.mean(baselines["average_mask"]))
        entries = {}
        for m, values in per_method.items():
            s = summarize(values, seed=self.config.bootstrap_seed)
            test = paired_test(values, baselines["average_mask"], alternative="greater")
            entries[m] = {**s.as_dict(), "baseline_low": low_mean,
                          "baseline_high": float(np.mean(baselines["localizer"])) if "localizer" in baselines else None,
                          "p_vs_low": test.p_value,
                          "passed": bool(s.mean > low_mean and test.p_value < P_THRESHOLD) if s.n else None}
        summary["criteria"]["utility"] = {
            "metric": "AUPRC", "n_images": len(ids), "methods": entries,
            "baselines": {b: summarize(v, seed=self.config.bootstrap_seed).as_dict() for b, v in baselines.items()},
            "rule": f"pass: mean AUPRC > the average-mask baseline and paired Wilcoxon p < {P_THRESHOLD}"}
        return {"utility": pd.DataFrame(rows), "utility_baselines": pd.DataFrame(base_rows)}

    def _average_mask_auprc(self, masks: np.ndarray) -> np.ndarray:
        prior_ids = self.dataset.ids(split="train") + self.dataset.ids(split="val")
        prior = np.mean([self.dataset.mask(i, self.size) for i in prior_ids], axis=0).astype(np.float32)
        return auprc_batch(torch.from_numpy(np.repeat(prior[None], len(masks), 0)), torch.from_numpy(masks)).numpy()

    def _localizer_maps(self, ids, which: int = 0) -> np.ndarray | None:
        from ..models.localizer import load_localizer, load_score_maps, predict_maps

        if self.localizer_maps is not None and which == 0:
            found = load_score_maps(self.localizer_maps, ids, self.size)
            missing = [i for i in ids if i not in found]
            if missing:
                raise ConfigError(f"{len(missing)} image(s) have no localizer score map in "
                                  f"{self.localizer_maps} (e.g. {missing[:3]})")
            return np.stack([found[i] for i in ids])
        if len(self.localizer_paths) <= which:
            return None
        model = load_localizer(self.localizer_paths[which])
        size = int(model.trust_meta.get("input_size") or self.size)
        maps = predict_maps(model, torch.stack([self._input(i, size) for i in ids]))
        return np.stack([resize_image(m, self.size) for m in maps])

    def _ssim(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-image SSIM of stacks (N, H, W); NaN where either map is flagged."""
        out = np.full(len(a), np.nan)
        ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
        if ok.any():
            out[ok] = ssim_batch(torch.from_numpy(a[ok]), torch.from_numpy(b[ok]),
                                 data_range=self.config.data_range).numpy()
        return out

    def _randomization(self, maps, state_index, summary) -> dict[str, pd.DataFrame]:
        ids = self.ssim_ids
        rows = []
        for model_index in self.replicates:
            reference = maps[(model_index, "original")]
            for (mi, state), state_maps in maps.items():
                if mi != model_index or state == "original":
                    continue
                for m in self.methods:
                    values = self._ssim(np.stack([reference[i][m] for i in ids]), np.stack([state_maps[i][m] for i in ids]))
                    rows += [{"model": model_index, "state": state, "state_index": state_index[state], "image_id": i,
                              "method": m, "ssim": v} for i, v in zip(ids, values)]
        table = pd.DataFrame(rows)
        # Random-pair baseline: original maps of two different images.
        rng = np.random.default_rng(self.config.ssim_seed)
        base_rows = []
        original = maps[(0, "original")]
        for m in self.methods:
            stack = np.stack([original[i][m] for i in ids])
            for k, image_id in enumerate(ids):
                others = np.delete(np.arange(len(ids)), k)
                if others.size == 0:
                    continue
                partners = rng.choice(others, size=min(self.config.baseline_pairs, others.size), replace=False)
                values = self._ssim(np.repeat(stack[k][None], len(partners), 0), stack[partners])
                base_rows.append({"image_id": image_id, "method": m, "ssim": float(np.nanmean(values))
                                  if np.isfinite(values).any() else np.nan, "pairs": int(len(partners))})
        baseline = pd.DataFrame(base_rows)
        last = max(state_index.values()) if state_index else 0
        entries = {}
        for m in self.methods:
            sub = table[table.method == m]
            curve = (sub.groupby(["state_index", "state"]).ssim.agg(["mean", "std", "count"]).reset_index()
                     .sort_values("state_index"))
            per_replicate = sub.groupby(["state_index", "model"]).ssim.mean().unstack()
            final = sub[sub.state_index == last].groupby("image_id").ssim.mean().reindex(ids).to_numpy()
            base_value = float(baseline[baseline.method == m].ssim.mean()) if len(baseline) else float("nan")
            s = summarize(final, seed=self.config.bootstrap_seed)
            entry = {**s.as_dict(), "baseline": base_value, "final_state": curve.state.iloc[-1] if len(curve) else None,
                     "passed": bool(s.mean < base_value) if s.n and np.isfinite(base_value) else None,
                     "curve": [{"state": r.state, "state_index": int(r.state_index), "mean": float(r["mean"]),
                                "std": float(per_replicate.loc[r.state_index].std()) if per_replicate.shape[1] > 1
                                else float(r["std"]), "n": int(r["count"])} for _, r in curve.iterrows()]}
            if self.config.ttest:
                entry["ttest_p"] = one_sided_below(final, base_value).p_value
            entries[m] = entry
        summary["criteria"]["randomization"] = {
            "metric": "SSIM", "n_images": len(ids), "replicates": len(self.replicates),
            "mode": self.config.randomization_mode, "init": self.config.randomization_init, "methods": entries,
            "rule": "pass: mean SSIM at the fully randomized state < the random-pair baseline"}
        return {"randomization": table, "randomization_baseline": baseline}

    def _agreement(self, name, pairs, maps, summary) -> dict[str, pd.DataFrame]:
        ids = self.ssim_ids
        rows = []
        for a, b in pairs:
            for m in self.methods:
                values = self._ssim(np.stack([maps[(a, "original")][i][m] for i in ids]),
                                    np.stack([maps[(b, "original")][i][m] for i in ids]))
                rows += [{"criterion": name, "pair": f"{a}-{b}", "image_id": i, "method": m, "ssim": v}
                         for i, v in zip(ids, values)]
        table = pd.DataFrame(rows, columns=["criterion", "pair", "image_id", "method", "ssim"])
        entries = {}
        for m in self.methods:
            values = table[table.method == m].groupby("image_id").ssim.mean().reindex(ids).to_numpy()
            entries[m] = summarize(values, seed=self.config.bootstrap_seed).as_dict() if pairs else None
        summary["criteria"][name] = {
            "metric": "SSIM", "n_images": len(ids), "pairs": [f"{self.arches[a]}#{a} vs {self.arches[b]}#{b}"
                                                              for a, b in pairs],
            "methods": entries, "available": bool(pairs),
            "rule": "pass: mean SSIM ≥ the SSIM between two localizers trained with different seeds"}
        return {name: table}

    def _localizer_agreement(self, summary) -> dict[str, pd.DataFrame]:
        first, second = self._localizer_maps(self.ssim_ids, 0), self._localizer_maps(self.ssim_ids, 1)
        baseline = None
        rows = []
        if first is not None and second is not None:
            values = self._ssim(first, second)
            rows = [{"image_id": i, "ssim": v} for i, v in zip(self.ssim_ids, values)]
            baseline = summarize(values, seed=self.config.bootstrap_seed).as_dict()
        for name in ("repeatability", "reproducibility"):
            block = summary["criteria"].get(name)
            if block is None:
                continue
            block["baseline"] = baseline
            for m, entry in block["methods"].items():
                if entry is not None:
                    entry["baseline"] = baseline["mean"] if baseline else None
                    entry["passed"] = bool(entry["mean"] >= baseline["mean"]) if baseline and entry["n"] else None
        return {"localizer_agreement": pd.DataFrame(rows, columns=["image_id", "ssim"])}

    def describe(self) -> dict:
        import captum
        import skimage
        import sklearn

        from .. import __version__
        from ..saliency import CODE_VERSION

        return {"config": asdict(self.config), "methods": self.methods, "params": self.params,
                "dataset": {"kind": self.dataset.kind, "root": str(self.dataset.root),
                            "fingerprint": self.dataset.fingerprint, "skipped": self.dataset.skipped.counts},
                "models": [{"path": p, "arch": a, "meta": m.trust_meta}
                           for p, a, m in zip(self.model_paths, self.arches, self.models)],
                "localizers": self.localizer_paths, "localizer_maps": str(self.localizer_maps or ""),
                "image_size": self.size, "utility_images": len(self.utility_ids), "ssim_images": len(self.ssim_ids),
                "versions": {"trust_core": __version__, "saliency_code": CODE_VERSION, "torch": str(torch.__version__),
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
        for state_name, model in evaluation._state_models(model_index):
            if state_name not in wanted:
                continue
            for k in indices:
                if units[k].state == state_name:
                    outputs[k] = evaluation.run_unit(units[k], model)
                    done += 1
                    if progress:
                        progress(done, len(units), f"{evaluation.arches[model_index]}#{model_index} {state_name}")
            wanted.discard(state_name)
            if not wanted:
                break
    return outputs


def write_outputs(result: EvalResult, out: str | Path) -> Path:
    """Per-image tables (Parquet + CSV), ``config.json``, then ``summary.json``; each file atomic.

    ``summary.json`` is the commit mark of the set: it is removed first and written last, so a run killed
    while writing leaves no summary (readers see no results) rather than a summary beside other tables.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)
    for name, table in result.tables.items():
        for suffix, writer in ((".parquet", lambda t, p: t.to_parquet(p, index=False)),
                               (".csv", lambda t, p: t.to_csv(p, index=False))):
            with atomic_path(out / f"{name}{suffix}") as tmp:
                writer(table, tmp)
    atomic_write(out / "config.json", json.dumps(result.config, indent=2, default=_json_default))
    atomic_write(out / "summary.json", json.dumps({**result.summary, "stats": result.stats}, indent=2,
                                                  default=_json_default))
    return out


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def evaluate(dataset: RadiographDataset, model_paths, config: EvalConfig = EvalConfig(), *,
             localizers=(), localizer_maps=None, cache: Store | None = None, out=None, progress=None) -> EvalResult:
    """Plan, run (local engine) and score an evaluation; write outputs to ``out`` when given."""
    evaluation = Evaluation(dataset, model_paths, config, localizers=localizers, localizer_maps=localizer_maps,
                            cache=cache)
    result = evaluation.run(progress=progress)
    if out is not None:
        write_outputs(result, out)
    return result
