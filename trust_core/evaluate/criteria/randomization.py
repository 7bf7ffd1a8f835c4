"""The model-randomization test (Adebayo et al. 2018; the paper's randomization criterion) under one
similarity — SSIM (``randomization``), Spearman rank correlation (``spearman``) or HOG similarity (``hog``):
per replicate of the main architecture, the similarity of each state's maps to the original's, against
that replicate's random-pair baseline (its original maps of two different images), both sides averaged
over the same replicates. Cascading mode decides on the fully randomized state; independent mode on every
block (each must change the maps)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...metrics import one_sided_below, summarize
from ..verdicts import point_rule
from . import SIMILARITY_LABELS
from .context import ScoringContext


def score(ctx: ScoringContext):
    plan, ids, criterion = ctx.plan, ctx.plan.ssim_ids, ctx.criterion
    name = criterion.column  # the similarity: 'ssim', 'spearman' or 'hog'
    label = SIMILARITY_LABELS[name]
    independent = ctx.config.randomization_mode == "independent"
    partners = plan.partners()
    rows, base_rows = [], []
    for model_index in plan.replicates:
        for (mi, state) in ctx.maps:
            if mi != model_index or state == "original":
                continue
            for m in ctx.methods:
                values = ctx.similarity_to_original(name, model_index, state, m, ids)
                rows += [{"model": model_index, "state": state, "state_index": ctx.state_index[state], "image_id": i,
                          "method": m, "ssim": v} for i, v in zip(ids, values)]
        for m in ctx.methods:
            base, pairs = ctx.pair_baseline(ctx.stack(model_index, "original", m, ids),
                                            lambda a, b: ctx.similarity(name, a, b))
            base_rows += [{"model": model_index, "image_id": image_id, "method": m, "ssim": base[k],
                           "pairs": int(pairs[k])} for k, image_id in enumerate(ids) if partners[k].size]
    table = pd.DataFrame(rows, columns=["model", "state", "state_index", "image_id", "method", "ssim"])
    baseline = pd.DataFrame(base_rows, columns=["model", "image_id", "method", "ssim", "pairs"])
    last, _final = ctx.final_state
    entries = {m: _entry(ctx, table[table.method == m], baseline[baseline.method == m], independent)
               for m in ctx.methods}
    if name != "ssim":
        for entry in entries.values():
            entry["paper_rule"] = None  # the paper tested SSIM only
    tables = {criterion.table: table.rename(columns={"ssim": name}),
              criterion.baseline_table: baseline.rename(columns={"ssim": name})}
    return ctx.result(entries, tables, metric=label, replicates=len(plan.replicates),
                      mode=ctx.config.randomization_mode, init=ctx.config.randomization_init,
                      baseline=f"mean {label} between original maps of two different images "
                               f"({ctx.config.baseline_pairs} partners per image), per replicate, averaged over "
                               f"the same replicates as the states", last_state_index=last)


def _entry(ctx: ScoringContext, sub: pd.DataFrame, baseline: pd.DataFrame, independent: bool) -> dict:
    """One method's result: the curve over the states, the paired comparison of each state with the
    baseline, and the verdict of the decisive state (the last; independent mode: every block)."""
    ids = ctx.plan.ssim_ids
    curve = (sub.groupby(["state_index", "state"]).ssim.agg(["mean", "std", "count"]).reset_index()
             .sort_values("state_index"))
    per_replicate = sub.groupby(["state_index", "model"]).ssim.mean().unstack()
    # per image: the mean over the replicates where both the state's similarity and that replicate's
    # random-pair baseline exist, so both sides average the same replicates
    base_m = baseline[["model", "image_id", "ssim"]].rename(columns={"ssim": "base"})
    comparisons, per_state = {}, {}
    for name in curve.state:
        paired = sub[sub.state == name].merge(base_m, on=["model", "image_id"]).dropna(subset=["ssim", "base"])
        means = paired.groupby("image_id")[["ssim", "base"]].mean().reindex(ids)
        per_state[name] = means.ssim.to_numpy()
        comparisons[name] = ctx.compare(means.ssim.to_numpy(), means.base.to_numpy())
    if independent and comparisons:
        decisive = max(comparisons, key=lambda n: (comparisons[n].mean if comparisons[n].n else -np.inf))
        verdicts = [c.verdict for c in comparisons.values()]
        verdict = "fail" if "fail" in verdicts else "pass" if all(v == "pass" for v in verdicts) else "inconclusive"
        paper_rule = point_rule(all(c.n and c.mean < c.baseline for c in comparisons.values()),
                                min(c.n for c in comparisons.values()))
    else:
        decisive = curve.state.iloc[-1] if len(curve) else None
        verdict = comparisons[decisive].verdict if decisive else "inconclusive"
        c = comparisons.get(decisive)
        paper_rule = point_rule(bool(c and c.mean < c.baseline), c.n if c else 0)
    final = per_state.get(decisive, np.full(len(ids), np.nan))
    c = comparisons.get(decisive)
    s = summarize(final, seed=ctx.seed)
    entry = {**s.as_dict(), "baseline": c.baseline if c else float("nan"),
             "difference": c.difference if c else float("nan"),
             "difference_ci": [c.ci_low, c.ci_high] if c else [float("nan")] * 2,
             "n_paired": c.n if c else 0, "final_state": decisive, "verdict": verdict, "paper_rule": paper_rule,
             "states": {name: comp.as_dict() for name, comp in comparisons.items()},
             "curve": [{"state": r.state, "state_index": int(r.state_index), "mean": float(r["mean"]),
                        "std": float(per_replicate.loc[r.state_index].std()) if per_replicate.shape[1] > 1
                        else float(r["std"]), "n": int(r["count"])} for _, r in curve.iterrows()]}
    if ctx.config.ttest:
        entry["ttest_p"] = one_sided_below(final, entry["baseline"]).p_value
    return entry
