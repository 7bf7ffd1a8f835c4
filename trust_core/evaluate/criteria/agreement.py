"""Repeatability and reproducibility (Arun et al. 2021): per-image SSIM between the maps of two replicates of
one architecture / of two architectures, against the SSIM between two localizers trained with different
seeds (the high baseline; without two localizers the verdict is inconclusive)."""
from __future__ import annotations

import pandas as pd

from ...metrics import summarize
from ..verdicts import point_rule
from .context import ScoringContext


def score(ctx: ScoringContext):
    plan, ids, name = ctx.plan, ctx.plan.ssim_ids, ctx.key
    pairs = ([(0, i) for i in plan.replicates[1:]] if name == "repeatability" else [(0, i) for i in plan.others])
    rows = []
    for a, b in pairs:
        for m in ctx.methods:
            values = ctx.ssim(ctx.stack(a, "original", m, ids), ctx.stack(b, "original", m, ids))
            rows += [{"criterion": name, "pair": f"{a}-{b}", "image_id": i, "method": m, "ssim": v}
                     for i, v in zip(ids, values)]
    table = pd.DataFrame(rows, columns=["criterion", "pair", "image_id", "method", "ssim"])
    base = ctx.localizer["agreement"]
    entries = {}
    for m in ctx.methods:
        if not pairs:
            entries[m] = None
            continue
        values = table[table.method == m].groupby("image_id").ssim.mean().reindex(ids).to_numpy()
        s = summarize(values, seed=ctx.seed)
        entry = {**s.as_dict(), "baseline": None, "verdict": "inconclusive", "paper_rule": None,
                 "reason": "no localizer baseline (give two localizers)"}
        if base is not None:
            c = ctx.compare(values, base)
            entry.update(baseline=c.baseline, difference=c.difference, difference_ci=[c.ci_low, c.ci_high],
                         n_paired=c.n, verdict=c.verdict, paper_rule=point_rule(c.mean >= c.baseline, c.n),
                         reason=None)
        entries[m] = entry
    return ctx.result(entries, {ctx.criterion.table: table}, metric="SSIM",
                      pairs=[f"{plan.model_label(a)} vs {plan.model_label(b)}" for a, b in pairs],
                      available=bool(pairs),
                      baseline=summarize(base, seed=ctx.seed).as_dict() if base is not None else None,
                      baseline_pair=ctx.localizer["agreement_pair"])
