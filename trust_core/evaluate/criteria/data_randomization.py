"""Adebayo et al.'s data randomization test: per image, SSIM between the first model's map and the map of each
model trained on shuffled labels (averaged over them), against the first model's random-pair baseline; pass
when the paired 95 % CI lies below 0 (the maps differ as much as maps of different images)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .context import ScoringContext


def score(ctx: ScoringContext):
    plan, ids, criterion = ctx.plan, ctx.plan.ssim_ids, ctx.criterion
    rows, base_rows, entries = [], [], {}
    for m in ctx.methods:
        stack = ctx.stack(0, "original", m, ids)
        per_model = []
        for k in plan.shuffled:
            values = ctx.ssim(stack, ctx.stack(k, "original", m, ids))
            per_model.append(values)
            rows += [{"model": k, "image_id": i, "method": m, "ssim": v} for i, v in zip(ids, values)]
        base, _pairs = ctx.pair_baseline(stack, ctx.ssim)
        base_rows += [{"image_id": i, "method": m, "ssim": v} for i, v in zip(ids, base)]
        values = np.nanmean(np.stack(per_model), 0) if per_model else np.full(len(ids), np.nan)
        entries[m] = ctx.entry(values, base)
    return ctx.result(
        entries, {criterion.table: pd.DataFrame(rows, columns=["model", "image_id", "method", "ssim"]),
                  criterion.baseline_table: pd.DataFrame(base_rows, columns=["image_id", "method", "ssim"])},
        metric="SSIM", shuffled_models=[plan.model_paths[k] for k in plan.shuffled], baseline=criterion.baseline)
