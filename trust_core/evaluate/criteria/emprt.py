"""eMPRT (Hedström et al. 2023, Quantus EfficientMPRT): per image, the rise of the map's discrete entropy from
the original to the fully randomized state, (H₁ − H₀) / H₀, averaged over the replicates; pass when its CI
lies above 0."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...metrics import extra
from .context import ScoringContext, per_image


def score(ctx: ScoringContext):
    plan, ids = ctx.plan, ctx.plan.ssim_ids
    last, final = ctx.final_state
    rows, entries = [], {}
    for m in ctx.methods:
        per_replicate = []
        for model_index in plan.replicates:
            if last == 0 or (model_index, final) not in ctx.maps:
                continue
            values = ctx.scored("emprt", "", model_index, final, m, ids,
                                lambda: per_image(extra.emprt, ctx.stack(model_index, "original", m, ids),
                                                  ctx.stack(model_index, final, m, ids)))
            per_replicate.append(values)
            rows += [{"model": model_index, "state": final, "image_id": i, "method": m, "emprt": v}
                     for i, v in zip(ids, values)]
        values = np.nanmean(np.stack(per_replicate), 0) if per_replicate else np.full(len(ids), np.nan)
        entries[m] = ctx.entry(values, np.zeros(len(ids)), baseline=0.0, final_state=final)
    return ctx.result(entries, {ctx.criterion.table: pd.DataFrame(rows, columns=["model", "state", "image_id",
                                                                                 "method", "emprt"])},
                      replicates=len(plan.replicates), baseline=ctx.criterion.baseline, bins=extra.ENTROPY_BINS)
