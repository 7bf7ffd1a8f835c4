"""Utility (Arun et al. 2021): per-image AUPRC of the first model's maps on the positive test images against
the average ground-truth mask of train+val (low baseline) and a localizer's score maps (high baseline);
paired Wilcoxon tests against both, Holm-corrected across the methods; and the AUPRC of every model state
(the paper's trained and "untrained" rows, Fig. 2)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...metrics import holm, paired_test, summarize
from ..verdicts import point_rule
from .context import ScoringContext


def score(ctx: ScoringContext):
    plan, ids = ctx.plan, ctx.plan.utility_ids
    masks = plan.masks(ids)
    flags = ctx.flags[(0, "original")]
    per_method = {m: ctx.auprc_of(0, "original", m, ids, masks) for m in ctx.methods}
    rows = []
    for m, values in per_method.items():
        negative = [((ctx.stats.get((0, "original"), {}).get(i) or {}).get(m) or {}).get("negative_fraction")
                    for i in ids]
        rows += [{"image_id": i, "method": m, "auprc": v, "flag": flags[i][m],
                  "xrai_negative_fraction": np.nan if f is None else f}
                 for i, v, f in zip(ids, values, negative)]
    baselines = {"average_mask": plan.average_mask_auprc(masks)}
    if ctx.localizer["utility_maps"] is not None:
        baselines["localizer"] = ctx.auprc(ctx.localizer["utility_maps"], masks)
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
        vs_low = ctx.compare(values, low)
        entry = ctx.entry(values, comparison=vs_low, baseline_low=vs_low.baseline,
                          baseline_high=_paired_mean(high, values) if high is not None else None,
                          p_vs_low=p_low[m], p_vs_low_holm=p_low_holm[m], p_vs_high=p_high.get(m),
                          p_vs_high_holm=p_high_holm.get(m),
                          paper_rule=point_rule(vs_low.mean > vs_low.baseline, vs_low.n))
        del entry["baseline"]  # utility has two: baseline_low and baseline_high
        if m == "xrai":
            fractions = np.array([r["xrai_negative_fraction"] for r in rows if r["method"] == "xrai"], float)
            entry["negative_fraction_mean"] = float(np.nanmean(fractions)) if np.isfinite(fractions).any() else None
        entries[m] = entry
    by_model, model_rows = _by_model(ctx)
    criterion = ctx.criterion
    return ctx.result(
        entries, {criterion.table: pd.DataFrame(rows), criterion.baseline_table: pd.DataFrame(base_rows),
                  "utility_by_model": model_rows},
        n_images=len(ids), by_model=by_model,
        baselines={b: summarize(v, seed=ctx.seed).as_dict() for b, v in baselines.items()},
        high_baseline_source=ctx.localizer["utility_source"])


def _by_model(ctx: ScoringContext) -> tuple[list[dict], pd.DataFrame]:
    """AUPRC of every model state that has maps of positive images: each replicate and the other architecture
    (on the utility images) and each randomized state (on the SSIM images)."""
    plan = ctx.plan
    positives = set(plan.utility_ids) | set(plan.ssim_ids)
    rows, entries = [], []
    for (model_index, state), state_maps in sorted(ctx.maps.items(),
                                                   key=lambda kv: (kv[0][0], ctx.state_index.get(kv[0][1], 0))):
        if model_index >= plan.trained:  # a shuffled-label model is data_randomization's, not a trained row
            continue
        ids = sorted(i for i in state_maps if i in positives)
        if state == "original":
            ids = [i for i in ids if i in set(plan.utility_ids)] or ids
        if not ids:
            continue
        masks = plan.masks(ids)
        index = ctx.state_index.get(state, 0)
        for m in ctx.methods:
            values = ctx.auprc_of(model_index, state, m, ids, masks)
            rows += [{"model": model_index, "arch": plan.arches[model_index], "state": state, "state_index": index,
                      "image_id": i, "method": m, "auprc": v} for i, v in zip(ids, values)]
            s = summarize(values, seed=ctx.seed)
            entries.append({"model": plan.model_label(model_index), "state": state, "state_index": index,
                            "method": m, "mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n,
                            "excluded": s.excluded})
    return entries, pd.DataFrame(rows, columns=["model", "arch", "state", "state_index", "image_id", "method",
                                                "auprc"])


def _paired_mean(values: np.ndarray, partner: np.ndarray) -> float:
    """Mean of ``values`` over the images where both arrays are finite (the same images as its partner's)."""
    keep = np.isfinite(values) & np.isfinite(partner)
    return float(values[keep].mean()) if keep.any() else float("nan")
