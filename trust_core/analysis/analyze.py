"""``trust analyze``: when and why a saliency method fails, from an evaluation's own results folder.

For each localization criterion the run scored (AUPRC, pointing game, energy pointing game, mIoU) and each
method, the per-image score against the lesion's geometry (:mod:`.geometry`) and the model's confidence —
Spearman's ρ with a bootstrap CI, a multiple regression on all features, the score per feature quartile
(:mod:`.associations`) — and, where the dataset has several readings per film, against a human ceiling
(:mod:`.ceiling`). Nothing is recomputed but one forward pass of the main model per image (its confidence):
the per-image tables and the ground truth are read as the evaluation left them.

Outputs, beside the evaluation's (the results folder stays one run's: a new evaluation replaces them):
``analysis.json``, ``analysis_features`` (per image: geometry, confidence), ``analysis_associations``,
``analysis_quartiles`` and ``analysis_ceiling`` (Parquet and CSV).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .associations import quartiles, regression, spearman_ci
from .ceiling import CEILING_COLUMNS, human_ceiling
from .geometry import FEATURE_LABELS, FEATURES, dataset_geometry

ANALYSIS_FILE = "analysis.json"
ANALYSIS_TABLES = ("analysis_features", "analysis_associations", "analysis_quartiles", "analysis_ceiling")
SHAPE_FEATURES = ("instances", "relative_size", "elongation", "irrectangularity")


@dataclass
class Analysis:
    summary: dict
    tables: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The compact summary the CLI prints: every association whose 95 % CI excludes 0, strongest first."""
        return summary_lines(self.summary)


def localization_criteria(summary: dict, wanted=None) -> list[str]:
    """The localization criteria a run scored (registry order), or those of ``wanted`` it scored."""
    from ..evaluate.criteria import CRITERIA

    scored = [c for c in summary.get("criteria_run", summary.get("criteria", {}))
              if c in CRITERIA and CRITERIA[c].family == "localization"]
    if wanted:
        unknown = [c for c in wanted if c not in CRITERIA or CRITERIA[c].family != "localization"]
        if unknown:
            raise ConfigError(f"--criteria {unknown}: not localization criteria; choose among "
                              f"{[k for k, c in CRITERIA.items() if c.family == 'localization']}")
        missing = [c for c in wanted if c not in scored]
        if missing:
            raise ConfigError(f"the run did not score {missing} (it scored {scored}): evaluate them first")
        return [c for c in scored if c in wanted]
    return scored


def reopen_dataset(config: dict, override: str | None = None):
    """The evaluated dataset, with the selection the run used (``override``: ``KIND:PATH`` where it moved)."""
    from ..data import open_dataset

    described = config.get("dataset", {})
    kind, root = described.get("kind"), described.get("root")
    spec = override or f"{kind}:{root}"
    if override is None and not Path(root or "").exists():
        raise ConfigError(f"the evaluated dataset {root!r} is not there any more: give its new place with "
                          f"--dataset {kind}:PATH")
    classes = described.get("classes", "paper") if kind == "rsna" else "paper"
    return open_dataset(spec, classes=tuple(classes) if isinstance(classes, list) else (classes or "all"),
                        finding=described.get("finding"), negatives=described.get("negatives"),
                        readers=described.get("readers"), mask_rule=described.get("mask_rule", "paper"),
                        image_size=config.get("image_size", 224))


def model_confidence(config: dict, dataset, image_ids) -> tuple[np.ndarray, str]:
    """(per image, the main model's probability of the class its maps explain; what it is)."""
    import torch

    from ..models import load
    from ..models.info import info_of
    from ..models.spec import spec_from_dict

    entry = config["models"][0]
    model = load(spec_from_dict(entry["spec"]) if entry.get("spec") else entry["path"], num_classes=None)
    info = info_of(model)
    target = config.get("params", {}).get("target", "predicted")
    target = info.target if info.target is not None else (None if target in (None, "predicted") else int(target))
    prep = info.prep
    out = []
    with torch.no_grad():
        for start in range(0, len(image_ids), 16):
            x = torch.stack([prep(dataset.image(i, prep.size, prep.resize)) for i in image_ids[start:start + 16]])
            logits = model(x).float()
            explained = logits.argmax(1) if target is None else torch.full((len(x),), target)
            if info.activation == "softmax":
                scores = torch.softmax(logits, 1)
            elif info.activation == "sigmoid":
                scores = torch.sigmoid(logits)
            else:
                return np.full(len(image_ids), np.nan), "the model's head gives logits: no probability to read"
            out.append(scores.gather(1, explained[:, None])[:, 0].numpy())
    what = "predicted" if target is None else f"class {target}"
    return np.concatenate(out).astype(np.float64), f"{info.activation} probability of the explained ({what}) class"


def analyze(run: str | Path, *, criteria=None, methods=None, dataset: str | None = None,
            seed: int = 0, progress=None) -> Analysis:
    """The failure analysis of one results folder (see the module docstring)."""
    import pandas as pd

    from ..evaluate.criteria import CRITERIA
    from ..metrics.stats import bootstrap_ci, compare_paired
    from ..saliency import METHODS

    started = time.perf_counter()
    run = Path(run)
    summary_path, config_path = run / "summary.json", run / "config.json"
    if not summary_path.is_file() or not config_path.is_file():
        raise ConfigError(f"--run {run}: not an evaluation's results folder (no summary.json and config.json); "
                          f"give the --out of a `trust evaluate` run")
    summary, config = json.loads(summary_path.read_text()), json.loads(config_path.read_text())
    chosen = localization_criteria(summary, criteria)
    if not chosen:
        raise ConfigError(f"--run {run}: the run scored no localization criterion (utility, pointing_game, "
                          f"energy_pointing_game, miou): nothing to analyze")
    scores = {}
    for criterion in chosen:
        spec = CRITERIA[criterion]
        path = run / f"{spec.table}.parquet"
        if not path.is_file():
            raise ConfigError(f"--run {run}: {path.name} is missing (the folder is incomplete): rerun the evaluation")
        table = pd.read_parquet(path)
        scores[criterion] = table
    run_methods = list(dict.fromkeys(m for t in scores.values() for m in t.method))
    if methods:
        unknown = [m for m in methods if m not in run_methods]
        if unknown:
            raise ConfigError(f"--methods {unknown}: the run has maps of {run_methods} only")
        run_methods = [m for m in run_methods if m in methods]
    image_ids = sorted({i for t in scores.values() for i in t.image_id.astype(str)})
    data = reopen_dataset(config, dataset)
    timings = {}
    t0 = time.perf_counter()
    features = dataset_geometry(data, image_ids)
    timings["geometry_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    confidence, confidence_note = model_confidence(config, data, image_ids)
    features["confidence"] = confidence
    timings["confidence_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ceiling, ceiling_note = human_ceiling(data, image_ids)
    timings["ceiling_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    names = list(FEATURES)
    out = {"run": str(run), "dataset": {k: config.get("dataset", {}).get(k) for k in ("kind", "root", "fingerprint",
                                                                                     "finding", "readers")},
           "features": FEATURES, "confidence": confidence_note, "n_images": len(image_ids),
           "ceiling": {"note": ceiling_note, "films": int(len(ceiling))}, "criteria": {},
           "provenance": {"preset": summary.get("preset"), "code_version": summary.get("code_version"),
                          "models": [m.get("path") for m in config.get("models", [])],
                          "evaluation_code": config.get("versions", {}).get("evaluation_code")}}
    associations, quartile_rows = [], []
    for criterion in chosen:
        column = CEILING_COLUMNS.get(criterion)
        if column and len(ceiling) and ceiling[column].notna().any():
            values = ceiling[column].dropna().to_numpy()
            low, high = bootstrap_ci(values, seed=seed)
            out["ceiling"].setdefault("by_criterion", {})[criterion] = {
                "mean": float(values.mean()), "ci_low": low, "ci_high": high, "n": int(values.size)}
    for criterion in chosen:
        spec = CRITERIA[criterion]
        table = scores[criterion]
        block = {"label": spec.label, "metric": spec.metric, "column": spec.column, "methods": {},
                 "short": "AUPRC" if criterion == "utility" else spec.label}
        for method in run_methods:
            part = table[table.method == method]
            if not len(part):
                continue
            values = part.groupby(part.image_id.astype(str))[spec.column].mean()
            frame = features.set_index("image_id").join(values.rename("score"), how="inner")
            entry = {"label": METHODS[method].label if method in METHODS else method, "n": int(frame.score.notna().sum()),
                     "mean": float(frame.score.mean()), "spearman": {}, "quartiles": {}}
            for feature in names:
                rho = spearman_ci(frame[feature], frame.score, seed=seed)
                entry["spearman"][feature] = rho
                associations.append({"criterion": criterion, "method": method, "feature": feature, **rho})
                entry["quartiles"][feature] = quartiles(frame[feature], frame.score)
                quartile_rows += [{"criterion": criterion, "method": method, "feature": feature, **q}
                                  for q in entry["quartiles"][feature]]
            entry["regression"] = regression(frame.score.to_numpy(), {f: frame[f].to_numpy() for f in names})
            column = CEILING_COLUMNS.get(criterion)
            if column and len(ceiling):
                paired = frame.join(ceiling.set_index("image_id")[column].rename("human"), how="inner")
                c = compare_paired(paired.score, paired.human, better="greater")
                entry["ceiling"] = {"human": c.baseline, "method": c.mean, "difference": c.difference,
                                    "ci_low": c.ci_low, "ci_high": c.ci_high, "n": c.n}
            block["methods"][method] = entry
        out["criteria"][criterion] = block
    timings["associations_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    out["timings"] = timings
    tables = {"analysis_features": features,
              "analysis_associations": pd.DataFrame(associations),
              "analysis_quartiles": pd.DataFrame(quartile_rows),
              "analysis_ceiling": ceiling}
    return Analysis(out, tables)


def write_analysis(analysis: Analysis, run: str | Path) -> Path:
    """``analysis.json`` and its tables into the results folder, each file whole or not at all."""
    from ..io import atomic_path, atomic_write, writable_folder

    run = writable_folder(run)
    for name, table in analysis.tables.items():
        with atomic_path(run / f"{name}.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        with atomic_path(run / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    atomic_write(run / ANALYSIS_FILE, json.dumps(analysis.summary, indent=2, default=_plain))
    return run / ANALYSIS_FILE


def read_analysis(run: str | Path) -> dict | None:
    path = Path(run) / ANALYSIS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def summary_lines(summary: dict, *, limit: int = 12) -> list[str]:
    """"Grad-CAM AUPRC falls with instances: ρ = −0.31 [−0.45, −0.16] (n = 64)", for each association whose
    95 % CI excludes 0 (strongest first), then the human ceiling."""
    found = []
    for criterion, block in summary["criteria"].items():
        for method, entry in block["methods"].items():
            for feature, rho in entry["spearman"].items():
                low, high = rho["ci_low"], rho["ci_high"]
                if low == low and high == high and (low > 0 or high < 0):
                    verb = "rises" if rho["rho"] > 0 else "falls"
                    found.append((abs(rho["rho"]), f"{entry['label']} {block['short']} {verb} with "
                                  f"{FEATURE_LABELS[feature]}: ρ = {rho['rho']:+.2f} [{low:+.2f}, {high:+.2f}] "
                                  f"(n = {rho['n']})"))
    lines = [text for _, text in sorted(found, key=lambda t: -t[0])[:limit]]
    if not found:
        lines.append("no association whose 95 % CI excludes 0 (at this n)")
    elif len(found) > limit:
        lines.append(f"… and {len(found) - limit} more in analysis_associations.csv")
    lines.append(summary["ceiling"]["note"])
    for criterion, block in summary["criteria"].items():
        for method, entry in block["methods"].items():
            if "ceiling" in entry:
                c = entry["ceiling"]
                lines.append(f"{entry['label']} {block['short']} − human ceiling: {c['difference']:+.3f} "
                             f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] (n = {c['n']}; human {c['human']:.3f})")
    return lines
