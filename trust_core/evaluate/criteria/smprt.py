"""sMPRT (Hedström et al. 2023, Quantus SmoothMPRT): MPRT on denoised maps — each the mean of the maps of the
image and of ``smprt_samples`` − 1 noisy copies — by Spearman correlation of the original and fully
randomized states, against the random-pair baseline of the denoised original maps; per replicate, then
averaged."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .context import ScoringContext


def score(ctx: ScoringContext):
    plan, ids = ctx.plan, ctx.plan.ssim_ids
    _last, final = ctx.final_state
    samples = ctx.config.smprt_samples

    def denoised(model_index, state, m):
        stacks = [ctx.stack(model_index, state, m, ids)]
        copies = ctx.noisy_maps.get((model_index, state), {})
        stacks += [np.stack([copies[i][m][k] for i in ids]) for k in range(samples - 1)]
        return np.mean(stacks, axis=0)  # NaN where any copy's map is flagged

    def spearman(a, b):
        return ctx.similarity("spearman", a, b)

    rows, entries = [], {}
    for m in ctx.methods:
        values_by_replicate, base_by_replicate = [], []
        for model_index in plan.replicates:
            if final is None or (model_index, final) not in ctx.maps:
                continue
            a, b = denoised(model_index, "original", m), denoised(model_index, final, m)
            values = spearman(a, b)
            base, _pairs = ctx.pair_baseline(a, spearman)
            values_by_replicate.append(values)
            base_by_replicate.append(base)
            rows += [{"model": model_index, "state": final, "image_id": i, "method": m, "spearman": v,
                      "baseline": w} for i, v, w in zip(ids, values, base)]
        values, base = _replicate_mean(values_by_replicate, len(ids)), _replicate_mean(base_by_replicate, len(ids))
        entries[m] = ctx.entry(values, base, final_state=final)
    return ctx.result(entries, {ctx.criterion.table: pd.DataFrame(
        rows, columns=["model", "state", "image_id", "method", "spearman", "baseline"])},
        replicates=len(plan.replicates), samples=samples, noise=ctx.config.smprt_noise,
        baseline=ctx.criterion.baseline)


def _replicate_mean(by_replicate: list, n: int) -> np.ndarray:
    """Each image's mean over the replicates that scored it; NaN where none did (every replicate flagged
    the image's maps), without numpy's "Mean of empty slice" warning on the user's console."""
    if not by_replicate:
        return np.full(n, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(by_replicate), 0)
