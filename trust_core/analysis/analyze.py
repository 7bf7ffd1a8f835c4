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
from ..layout import ANALYSIS_FILE, ANALYSIS_TABLES
from .associations import ci_excludes_0, quartiles, regression, rho_text, spearman_ci
from .ceiling import CEILING_COLUMNS, human_ceiling
from .geometry import FEATURE_LABELS, FEATURES, dataset_geometry

ANALYSIS_VERSION = "analysis-2"  # a stored analysis of another version is computed again (2: no CI where the
# bootstrap is conditional or below 10 images)
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


def located(recorded: str | None, run: Path) -> Path | None:
    """A path as the evaluation recorded it (relative to the folder it ran in): as it is, else relative to one
    of the results folder's ancestors (the run's own folder, when only the working folder changed)."""
    if not recorded:
        return None
    path = Path(recorded)
    if path.exists() or path.is_absolute():
        return path if path.exists() else None
    for base in Path(run).resolve().parents:
        if (base / path).exists():
            return base / path
    return None


def reopen_dataset(config: dict, override: str | None = None, run: Path = Path(".")):
    """The evaluated dataset, with the selection the run used (``override``: ``KIND:PATH`` where it moved),
    opened to read only (a split is never written into it)."""
    from ..data import DATASETS, open_dataset

    described = config.get("dataset", {})
    kind, root = described.get("kind"), described.get("root")
    where = located(root, run)
    if override is None and where is None:
        raise ConfigError(f"the evaluated dataset {root!r} is not there any more: give its new place with "
                          f"--dataset {kind}:PATH")
    spec = override or f"{kind}:{where}"
    selection = DATASETS[kind].selection_kwargs(described) if kind in DATASETS else {}
    if "classes" in selection and selection["classes"] is None:
        selection["classes"] = "all"  # the class's None (every image kept), as open_dataset is told it
    return open_dataset(spec, **selection, mask_rule=described.get("mask_rule", "paper"),
                        image_size=config.get("image_size", 224), save_splits=False)


def main_model(config: dict, run: Path, override: str | None = None):
    """The run's main model (its first ``--model``: the one the per-image localization tables score)."""
    from ..models import load
    from ..models.spec import spec_from_dict

    entry = config["models"][0]
    if override is not None:
        return load(override, num_classes=None)
    if entry.get("spec"):
        spec = dict(entry["spec"])
        if spec.get("weights") and not Path(spec["weights"]).exists():
            spec["weights"] = str(located(spec["weights"], run) or spec["weights"])
        return load(spec_from_dict(spec), num_classes=None)
    path = located(entry.get("path"), run)
    if path is None:
        raise ConfigError(f"the evaluated model {entry.get('path')!r} is not there any more: give its new place with "
                          f"--model PATH")
    return load(path, num_classes=None)


def explained_class(config: dict, info) -> int | None:
    """The class the run's maps explain, as :func:`~trust_core.saliency.explain` chose it: a ``--set target``
    override, else the spec's target, else None (the predicted class)."""
    override = (config.get("config") or {}).get("overrides", {}).get("target")
    if override not in (None, "predicted"):
        return int(override)
    return info.target


def model_confidence(config: dict, dataset, image_ids, model) -> tuple[np.ndarray, str]:
    """(per image, the main model's probability of the class its maps explain; what it is)."""
    import torch

    from ..models.info import activated, info_of

    info = info_of(model)
    if info.activation not in ("softmax", "sigmoid"):
        return np.full(len(image_ids), np.nan), "the model's head gives logits: no probability to read"
    target = explained_class(config, info)
    prep = info.prep
    out = []
    with torch.no_grad():
        for start in range(0, len(image_ids), 16):
            x = torch.stack([prep(dataset.image(i, prep.size, prep.resize)) for i in image_ids[start:start + 16]])
            logits = model(x).float()
            explained = logits.argmax(1) if target is None else torch.full((len(x),), target)
            out.append(activated(logits, info.activation).gather(1, explained[:, None])[:, 0].numpy())
    what = "the predicted class" if target is None else (
        f"class {target}" + (f" ({info.class_name(target)})" if info.classes else ""))
    return (np.concatenate(out).astype(np.float64),
            f"the main model's {info.activation} probability of the explained class: {what}")


def analyze(run: str | Path, *, criteria=None, methods=None, dataset: str | None = None, model: str | None = None,
            seed: int = 0, progress=None) -> Analysis:
    """The failure analysis of one results folder (see the module docstring)."""
    import pandas as pd

    from ..evaluate.criteria import CRITERIA
    from ..evaluate.outputs import read_results
    from ..metrics.stats import bootstrap_ci, compare_paired, holm
    from ..saliency import METHODS

    started = time.perf_counter()
    run = Path(run)
    summary, config = read_results(run, what=f"--run {run}")
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
    data = reopen_dataset(config, dataset, run)
    classifier = main_model(config, run, model)
    timings = {}
    t0 = time.perf_counter()
    features = dataset_geometry(data, image_ids)
    timings["geometry_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    confidence, confidence_note = model_confidence(config, data, image_ids, classifier)
    features["confidence"] = confidence
    timings["confidence_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    from ..models.info import info_of

    ceiling, ceiling_note = human_ceiling(data, image_ids, size=config.get("image_size"),
                                          resize=info_of(classifier).prep.resize)
    timings["ceiling_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    names = list(FEATURES)
    out = {"version": ANALYSIS_VERSION, "run": str(run), "dataset": {k: config.get("dataset", {}).get(k) for k in ("kind", "root", "fingerprint",
                                                                                     "finding", "readers")},
           "features": FEATURES, "confidence": confidence_note, "n_images": len(image_ids),
           "ceiling": {"note": ceiling_note, "films": int(len(ceiling))}, "criteria": {},
           "provenance": {"preset": summary.get("preset"), "code_version": summary.get("code_version"),
                          "models": [m.get("path") for m in config.get("models", [])],
                          "evaluation_code": config.get("versions", {}).get("evaluation_code")}}
    associations, quartile_rows, tested = [], [], []
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
                associations.append({"criterion": criterion, "method": method, "feature": feature})
                tested.append((rho, associations[-1]))
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
    # many tests (methods × criteria × features): Holm's adjustment over all of them, beside each CI
    finite = [(rho, row) for rho, row in tested if rho["p"] == rho["p"]]
    for (rho, _), adjusted in zip(finite, holm([rho["p"] for rho, _ in finite]) if finite else []):
        rho["p_holm"] = float(adjusted)
    for rho, row in tested:
        rho.setdefault("p_holm", float("nan"))
        row.update(rho)
    out["tests"] = {"associations": len(finite),
                    "ci_excludes_0": sum(1 for rho, _ in finite if ci_excludes_0(rho)),
                    "holm_below_0.05": sum(1 for rho, _ in finite if rho["p_holm"] < 0.05)}
    timings["associations_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    out["timings"] = timings
    tables = dict(zip(ANALYSIS_TABLES, (features, pd.DataFrame(associations), pd.DataFrame(quartile_rows), ceiling)))
    return Analysis(out, tables)


def write_analysis(analysis: Analysis, run: str | Path) -> Path:
    """``analysis.json`` and its tables into the results folder, each file whole or not at all."""
    from ..io import atomic_path, atomic_write, writable_folder

    run = writable_folder(run, what="--run")
    for name, table in analysis.tables.items():
        with atomic_path(run / f"{name}.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        with atomic_path(run / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    atomic_write(run / ANALYSIS_FILE, json.dumps(analysis.summary, indent=2, default=_plain))
    return run / ANALYSIS_FILE


def read_analysis(run: str | Path) -> dict | None:
    """The stored analysis of a results folder; None when there is none, or it is of another version."""
    path = Path(run) / ANALYSIS_FILE
    try:
        stored = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and stored.get("version") == ANALYSIS_VERSION else None


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
                if ci_excludes_0(rho):
                    verb = "rises" if rho["rho"] > 0 else "falls"
                    holm_p = rho.get("p_holm", float("nan"))
                    found.append((abs(rho["rho"]), f"{entry['label']} {block['short']} {verb} with "
                                  f"{FEATURE_LABELS[feature]}: ρ = {rho_text(rho)} (n = {rho['n']}; Holm p = "
                                  f"{holm_p:.2g})"))
    tests = summary.get("tests", {})
    lines = []
    if tests:
        lines.append(f"{tests['associations']} associations tested (methods × criteria × features): "
                     f"{tests['ci_excludes_0']} with a 95 % CI excluding 0, {tests['holm_below_0.05']} below 0.05 "
                     f"after Holm's adjustment for the {tests['associations']} tests")
    lines += [text for _, text in sorted(found, key=lambda t: -t[0])[:limit]]
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
