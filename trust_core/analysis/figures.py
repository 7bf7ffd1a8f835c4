"""Figures for a paper from an evaluation's results folder, as vector SVG and PDF (matplotlib), each with the
provenance line that decides its numbers (dataset and its fingerprint, models, preset, code version):

* ``forest_<criterion>``: per method the mean and its 95 % CI (coloured by verdict), the baseline and the
  paper's value — the scorecard's forest plots;
* ``metric_<criterion>``: per-image values per method with baselines and the paper's values — the Metrics
  page's plots;
* ``randomization_curves``: mean SSIM per cascade state, per method, with the random-pair baseline;
* ``utility_boxplots``: per-image AUPRC per method beside the average-mask (and localizer) baselines;
* ``why_<criterion>``: the failure analysis — per method the score against each feature, with its trend
  line and Spearman's ρ [95 % CI], and the human ceiling where there is one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..evaluate.outputs import read_results
from ..layout import ANALYSIS_FEATURES, table_path
from ..evaluate.verdicts import VERDICT_MARKS, baseline_of
from .associations import rho_text
from .drawing import draw, draw_all

FORMATS = ("svg", "pdf")


def provenance(summary: dict, config: dict) -> str:
    """One line: dataset (kind, finding, fingerprint), models (and their weights' digests), preset, evaluation
    and saliency code versions, the tool's version."""
    dataset = config.get("dataset", {})
    models = ", ".join(f"{Path(str(m.get('path'))).name} (weights {str(m.get('weights_digest', '?'))[:8]})"
                       for m in config.get("models", []))
    versions = config.get("versions", {})
    finding = f" {dataset['finding']}" if dataset.get("finding") else ""
    return (f"{str(dataset.get('kind', '?')).upper()}{finding} (fingerprint {dataset.get('fingerprint', '?')}) · "
            f"models {models} · preset {summary.get('preset')} · {summary.get('code_version')} / "
            f"{versions.get('saliency_code', '?')} · Saliency Trust Explorer {versions.get('trust_core', '')}")


def _figure(height: float, width: float = 7.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height))


def _save(figure, name: str, line: str, *, tight: bool = True) -> dict[str, bytes]:
    """The figure, with its provenance line, as SVG and PDF bytes (``name.svg``, ``name.pdf``)."""
    import io

    import matplotlib.pyplot as plt

    figure.text(0.01, 0.005, line, fontsize=5.5, color="#555555", ha="left", va="bottom", wrap=True)
    if tight:  # (a large grid sets its margins itself: tight_layout costs seconds there)
        figure.tight_layout(rect=(0, 0.04, 1, 1))
    drawn = {}
    for fmt in FORMATS:
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else
                       {"CreationDate": None, "Creator": "Saliency Trust Explorer"})
        drawn[f"{name}.{fmt}"] = buffer.getvalue()
    plt.close(figure)
    return drawn


def forest(summary: dict, criterion: str, kind: str, line: str) -> dict[str, bytes]:
    """One criterion's forest plot, two panels on one method axis: left, each method's mean and 95 % CI with
    the baseline(s) and the paper's value; right, the paired per-image difference (method − baseline) and its
    95 % CI against 0, coloured by verdict: what the verdict reads (the left CI leaves out the baseline's own
    spread over the images)."""
    from ..evaluate.criteria import CRITERIA
    from ..evaluate.paper import paper_value
    from ..saliency import METHODS

    block = summary["criteria"][criterion]
    rows = [(m, e) for m, e in block["methods"].items() if e is not None]
    if not rows:
        return {}
    figure = _figure(1.3 + 0.28 * len(rows))
    left, right = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.2, 1.0]})
    for y, (method, entry) in enumerate(rows):
        left.errorbar(entry["mean"], y, xerr=[[entry["mean"] - entry["ci_low"]], [entry["ci_high"] - entry["mean"]]],
                      fmt="o", color="#334155", capsize=2, label="ours")
        base = baseline_of(entry)
        high = entry.get("baseline_high")
        if isinstance(base, (int, float)):
            left.plot([base], [y], marker="|", markersize=12, color="orange",
                      label="baseline (low)" if isinstance(high, (int, float)) else "baseline")
        if isinstance(high, (int, float)):
            left.plot([high], [y], marker="|", markersize=12, color="#15803d", label="baseline (high: localizer)")
        paper = paper_value(criterion, kind, method)
        if isinstance(paper, float):
            left.plot([paper], [y], marker="D", markersize=4, color="black", label="paper")
        difference, ci = entry.get("difference"), entry.get("difference_ci") or [float("nan")] * 2
        if isinstance(difference, (int, float)) and all(v == v for v in ci):
            right.errorbar(difference, y, xerr=[[difference - ci[0]], [ci[1] - difference]], fmt="o", capsize=2,
                           color=VERDICT_MARKS.get(entry.get("verdict"), "#555555"), label=entry.get("verdict"))
    right.axvline(0, color="#64748b", linestyle=":", linewidth=0.8)
    left.set_yticks(range(len(rows)), [METHODS[m].label if m in METHODS else m for m, _ in rows])
    left.invert_yaxis()
    left.set_xlabel(f"{CRITERIA[criterion].label}: {block['metric']} (n = {block.get('n_images')})")
    right.set_xlabel("ours − baseline, paired (the verdict)")
    for axis in (left, right):
        handles, labels = axis.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        if unique:
            axis.legend(unique.values(), unique.keys(), fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                        ncol=3, frameon=False)
    return _save(figure, f"forest_{criterion}", line)


def randomization_curves(summary: dict, line: str) -> dict[str, bytes]:
    from ..saliency import METHODS
    from ..saliency.registry import method_colour

    block = summary["criteria"].get("randomization")
    if not block:
        return {}
    figure = _figure(3.2)
    axis = figure.add_subplot(111)
    states = []
    for method, entry in block["methods"].items():
        if not entry or not entry.get("curve"):
            continue
        curve = entry["curve"]
        states = [c["state"] for c in curve] if len(curve) > len(states) else states
        x = [c["state_index"] for c in curve]
        axis.plot(x, [c["mean"] for c in curve], marker="o", markersize=3, color=method_colour(method),
                  label=METHODS[method].label if method in METHODS else method)
        if isinstance(entry.get("baseline"), float):
            axis.axhline(entry["baseline"], color=axis.lines[-1].get_color(), linestyle=":", linewidth=0.8)
    axis.set_xticks(range(1, len(states) + 1), states, rotation=45, ha="right")
    axis.set_xlabel("randomized up to (cascading, from the logits down)")
    axis.set_ylabel("mean SSIM(original, randomized)")
    axis.legend(fontsize=6, ncol=2)
    axis.set_title("dotted: each method's random-pair baseline", fontsize=7)
    return _save(figure, "randomization_curves", line)


def utility_boxplots(run: Path, summary: dict, line: str) -> dict[str, bytes]:
    import pandas as pd

    from ..evaluate.criteria import CRITERIA
    from ..saliency import METHODS

    utility = CRITERIA["utility"]
    if "utility" not in summary["criteria"] or not table_path(run, utility.table).is_file():
        return {}
    table = pd.read_parquet(table_path(run, utility.table))
    groups, labels = [], []
    for method in dict.fromkeys(table.method):
        groups.append(table[table.method == method].auprc.dropna().to_numpy())
        labels.append(METHODS[method].label if method in METHODS else method)
    if table_path(run, utility.baseline_table).is_file():
        baselines = pd.read_parquet(table_path(run, utility.baseline_table))
        for name in dict.fromkeys(baselines.baseline):
            groups.append(baselines[baselines.baseline == name].auprc.dropna().to_numpy())
            labels.append(f"baseline: {name.replace('_', ' ')}")
    figure = _figure(3.2)
    axis = figure.add_subplot(111)
    axis.boxplot(groups, tick_labels=labels, showmeans=True)
    axis.set_ylabel("AUPRC per image")
    axis.tick_params(axis="x", rotation=45)
    for tick in axis.get_xticklabels():
        tick.set_ha("right")
    return _save(figure, "utility_boxplots", line)


def metric_plot(run: Path, summary: dict, criterion: str, kind: str, line: str) -> dict[str, bytes]:
    """The Metrics page's plot of one criterion: its per-image values per method (boxes with the points; a
    randomization criterion at its fully randomized state), its baselines as lines (a per-method baseline as a
    tick on its box) and the paper's values as diamonds."""
    import pandas as pd

    from ..evaluate.criteria import CRITERIA
    from ..evaluate.paper import paper_value
    from ..saliency import METHODS

    spec = CRITERIA[criterion]
    block = summary["criteria"].get(criterion)
    path = table_path(run, spec.table)
    if not block or not spec.table or not path.is_file():
        return {}
    table = pd.read_parquet(path)
    if spec.column not in table or not len(table):
        return {}
    state = None
    if "state_index" in table:
        state = int(table.state_index.max())
        table = table[table.state_index == state]
    per_image = table.groupby(["method", "image_id"])[spec.column].mean().reset_index()
    methods = [m for m in block["methods"] if m in set(per_image.method)]
    if not methods:
        return {}
    figure = _figure(3.2)
    axis = figure.add_subplot(111)
    groups = [per_image[per_image.method == m][spec.column].dropna().to_numpy() for m in methods]
    positions = list(range(1, len(methods) + 1))
    axis.boxplot(groups, positions=positions, tick_labels=[METHODS[m].label if m in METHODS else m for m in methods],
                 showmeans=True)
    rng = np.random.default_rng(0)  # the points, jittered (a fixed seed: the same figure each time)
    for x, values in zip(positions, groups):
        axis.plot(x + rng.uniform(-0.15, 0.15, len(values)), values, ".", color="#555555", markersize=2, alpha=0.6)
    if criterion == "utility":
        levels = [("average mask (low)", block["baselines"]["average_mask"]["mean"], "orange"),
                  ("localizer (high)", block["baselines"].get("localizer", {}).get("mean"), "green")]
    elif spec.family == "agreement":
        levels = [("localizers", (block.get("baseline") or {}).get("mean"), "green")]
    else:
        levels = []
        for x, m in zip(positions, methods):
            base = (block["methods"].get(m) or {}).get("baseline")
            if isinstance(base, (int, float)):
                axis.plot([x - 0.3, x + 0.3], [base, base], color="orange", linewidth=2,
                          label="baseline" if x == 1 else None)
    for name, level, colour in levels:
        if isinstance(level, (int, float)):
            axis.axhline(level, color=colour, linestyle="--", linewidth=1, label=name)
    papers = [(x, v) for x, m in zip(positions, methods) if isinstance(v := paper_value(criterion, kind, m), float)]
    if papers:
        axis.plot([x for x, _ in papers], [v for _, v in papers], "D", color="black", markersize=4, label="paper")
    axis.set_ylabel(f"{block['metric']} per image" + (f" (state {state})" if state is not None else ""))
    axis.set_title(f"{spec.label} (n = {block.get('n_images')})", fontsize=8)
    axis.tick_params(axis="x", rotation=45)
    for tick in axis.get_xticklabels():
        tick.set_ha("right")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=6, loc="best")
    return _save(figure, f"metric_{criterion}", line)


def why_it_fails(analysis: dict, features_table, run: Path, criterion: str, line: str) -> dict[str, bytes]:
    """A grid: methods (rows) × features (columns), the score against the feature with its least-squares
    trend and Spearman's ρ [95 % CI]; the human ceiling as a band where there is one."""
    import pandas as pd

    from ..evaluate.criteria import CRITERIA
    from ..saliency.registry import method_colour
    from .associations import trend_band
    from .geometry import FEATURE_LABELS, FEATURES

    block = analysis["criteria"].get(criterion)
    if not block or not block["methods"]:
        return {}
    table = pd.read_parquet(table_path(run, CRITERIA[criterion].table))
    features = features_table.set_index("image_id")
    methods = list(block["methods"])
    names = list(FEATURES)
    human = analysis.get("ceiling", {}).get("by_criterion", {}).get(criterion)
    from matplotlib.ticker import MaxNLocator

    height = 1.3 * len(methods) + 0.8
    figure = _figure(height, 1.6 * len(names))
    figure.subplots_adjust(left=0.09, right=0.99, top=1 - 0.85 / height, bottom=0.75 / height, wspace=0.35,
                           hspace=0.55)
    for r, method in enumerate(methods):
        entry = block["methods"][method]
        scores = table[table.method == method].groupby(table.image_id.astype(str))[block["column"]].mean()
        frame = features.join(scores.rename("score"), how="inner")
        for c, feature in enumerate(names):
            axis = figure.add_subplot(len(methods), len(names), r * len(names) + c + 1)
            x, y = frame[feature].to_numpy(float), frame.score.to_numpy(float)
            keep = np.isfinite(x) & np.isfinite(y)
            axis.scatter(x[keep], y[keep], s=6, color=method_colour(method))
            if keep.any():
                grid = np.linspace(x[keep].min(), x[keep].max(), 50)
                band = trend_band(x, y, grid)
                if band is not None:  # the least-squares trend and the 95 % CI of its mean
                    fit, low, high = band
                    axis.fill_between(grid, low, high, color="#b91c1c", alpha=0.15, linewidth=0)
                    axis.plot(grid, fit, color="#b91c1c", linewidth=1)
            if human:  # the human ceiling: its mean and 95 % CI over the films with several readings
                axis.axhspan(human["ci_low"], human["ci_high"], color="#15803d", alpha=0.2, linewidth=0)
                axis.axhline(human["mean"], color="#15803d", linewidth=0.8)
            rho = entry["spearman"][feature]
            text = "ρ n/a" if rho["rho"] != rho["rho"] else "ρ " + rho_text(rho, short=True)
            axis.set_title(text, fontsize=6)
            axis.tick_params(labelsize=5)
            axis.xaxis.set_major_locator(MaxNLocator(3, integer=feature == "instances"))
            axis.yaxis.set_major_locator(MaxNLocator(3))
            if r == len(methods) - 1:
                axis.set_xlabel(FEATURE_LABELS[feature], fontsize=6)
            if c == 0:
                axis.set_ylabel(f"{entry['label']}\n{block.get('short', block['label'])}", fontsize=6)
    figure.suptitle(f"{block['label']} ({block['metric']}) against lesion geometry and model confidence\nred: "
                    f"least-squares trend with the 95 % CI of its mean"
                    + (" · green: human ceiling (mean, 95 % CI)" if human else ""), fontsize=8)
    return _save(figure, f"why_{criterion}", line, tight=False)


def write_figures(run: str | Path, out: str | Path, *, analysis: dict | None = None, features=None,
                  workers: int | None = None) -> list[Path]:
    """Every figure of a results folder (:func:`drawn_figures`) into ``out``, each file atomically."""
    from ..errors import ConfigError
    from ..io import atomic_write, writable_folder

    if Path(out).resolve().is_relative_to(Path(run).resolve()):
        raise ConfigError(f"--out {out} is inside the results folder {run}: figures never go there (a results folder "
                          f"holds one evaluation's results, and a new evaluation may replace it); give another folder")
    out = writable_folder(out)
    written = []
    for name, data in drawn_figures(run, analysis=analysis, features=features, workers=workers).items():
        atomic_write(out / name, data)
        written.append(out / name)
    return written


def drawn_figures(run: str | Path, *, analysis: dict | None = None, features=None,
                  workers: int | None = None) -> dict[str, bytes]:
    """Every figure of a results folder, SVG and PDF: file name → bytes, in order (forest plots, metric plots,
    randomization curves, utility boxes, failure analysis). The failure-analysis figures use ``analysis``
    (default: the folder's ``analysis.json``, computed when absent — nothing is written into the results
    folder). The figures are drawn on ``workers`` cores (default: every core, at most
    ``drawing.MAX_WORKERS + 1``; 1 draws them in this process alone, :mod:`.drawing`)."""
    import pandas as pd

    from ..errors import ConfigError
    from .analyze import analyze, read_analysis

    run = Path(run)
    summary, config = read_results(run, what=f"--run {run}")
    kind = config.get("dataset", {}).get("kind", "rsna")
    line = provenance(summary, config)
    if analysis is None:
        analysis = read_analysis(run)
        features = pd.read_parquet(table_path(run, ANALYSIS_FEATURES)) if analysis else None
    elif features is None:
        raise ValueError(f"drawn_figures: an analysis needs its {ANALYSIS_FEATURES} table")
    if analysis is None:
        try:
            computed = analyze(run)
        except ConfigError:
            computed = None  # no localization criterion: no failure analysis to draw
        if computed is not None:
            analysis, features = computed.summary, computed.tables[ANALYSIS_FEATURES]
    jobs = [(forest, (summary, criterion, kind)) for criterion in summary["criteria"]]
    jobs += [(metric_plot, (run, summary, criterion, kind)) for criterion in summary["criteria"]]
    jobs += [(randomization_curves, (summary,)), (utility_boxplots, (run, summary))]
    if analysis is not None:
        jobs += [(why_it_fails, (analysis, features, run, criterion)) for criterion in analysis["criteria"]]
    return {name: data for drawn in draw_all(jobs, line, workers, _cost) for name, data in drawn.items()}


def _cost(job: tuple) -> float:
    """A figure's drawing time, relative to a small one (measured on 2 cores: a failure-analysis grid ≈4×, a
    two-panel forest plot ≈2.5×)."""
    return 4.0 if job[0] is why_it_fails else 2.5 if job[0] is forest else 1.0


PAGE_FIGURES = ("randomization_curves", "utility_boxplots")  # beside forest_<criterion>, one per criterion


def figure_bytes(run: str | Path, name: str, fmt: str) -> bytes:
    """One figure of a results folder as SVG or PDF bytes, with its provenance line: ``forest_<criterion>``
    (the scorecard's forest plot), ``metric_<criterion>`` (the Metrics page's), ``randomization_curves`` or
    ``utility_boxplots`` — the figures the app's
    pages export, drawn as :func:`write_figures` draws them."""
    from ..errors import ConfigError

    if fmt not in FORMATS:
        raise ConfigError(f"figure format {fmt!r}: choose one of {', '.join(FORMATS)}")
    run = Path(run)
    summary, config = read_results(run, what=str(run))
    kind = config.get("dataset", {}).get("kind", "rsna")
    if name.startswith("forest_") and name[len("forest_"):] in summary["criteria"]:
        job = (forest, (summary, name[len("forest_"):], kind))
    elif name.startswith("metric_") and name[len("metric_"):] in summary["criteria"]:
        job = (metric_plot, (run, summary, name[len("metric_"):], kind))
    elif name == "randomization_curves":
        job = (randomization_curves, (summary,))
    elif name == "utility_boxplots":
        job = (utility_boxplots, (run, summary))
    else:
        raise ConfigError(f"no figure {name!r} in {run}: forest_<criterion> or metric_<criterion> for a scored "
                          f"criterion, {' or '.join(PAGE_FIGURES)}")
    drawn = draw(job, provenance(summary, config))
    if f"{name}.{fmt}" not in drawn:
        raise ConfigError(f"{run}: nothing to draw for {name} (the run scored none of it)")
    return drawn[f"{name}.{fmt}"]
