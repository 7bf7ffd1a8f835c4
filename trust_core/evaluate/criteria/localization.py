"""Localization beyond AUPRC: the pointing game (Zhang et al. 2016), the energy-based pointing game (Wang et
al. 2020) and CheXlocalize's mIoU (Saporta et al. 2022) of the first model's maps on the utility images,
against the average-mask prior of train+val scored the same way (paired bootstrap CI)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...metrics import extra, summarize
from . import UNCLIPPED
from .context import ScoringContext, per_image, per_map_measure


def score(ctx: ScoringContext):
    plan, name, criterion = ctx.plan, ctx.key, ctx.criterion
    ids = plan.utility_ids
    masks = plan.masks(ids)
    prior = plan.prior()
    thresholds: dict[str, float] = {}
    # tied maxima: a hit when any is inside (Quantus) on the unclipped map; on the clipped map (~1 % of the
    # pixels tie at 1.0) their share inside, the expected hit of a random tie break
    ties = "any" if ctx.form == UNCLIPPED else "share"

    def measure(stack: np.ndarray, key: str) -> np.ndarray:
        if not np.isfinite(stack).all(axis=(1, 2)).any():  # every map flagged: nothing to score (or tune)
            return np.full(len(stack), np.nan)
        if name in ("pointing_game", "energy_pointing_game"):
            return per_image(per_map_measure(name, ties if name == "pointing_game" else ""), stack, given=(masks,))
        tuning = (ctx.stack(0, "original", key, plan.tuning_ids) if key != "average_mask"
                  else np.repeat(prior[None], len(plan.tuning_ids), 0))
        keep = np.isfinite(tuning).all(axis=(1, 2))
        thresholds[key], _means = extra.tune_threshold(tuning[keep], plan.masks(plan.tuning_ids)[keep])
        return per_image(lambda s, g: extra.iou_at(s, g, thresholds[key]), stack, given=(masks,))

    base = measure(np.repeat(prior[None], len(ids), 0), "average_mask")
    rows, entries = [], {}
    flags = ctx.flags[(0, "original")]
    for m in ctx.methods:
        if name == "miou":  # its threshold is tuned on other images' maps: scored here
            values = measure(ctx.stack(0, "original", m, ids), m)
        else:  # a measure of each map and its mask: scored as the unit finished
            values = ctx.scored(name, ties if name == "pointing_game" else "", 0, "original", m, ids,
                                lambda: measure(ctx.stack(0, "original", m, ids), m))
        rows += [{"image_id": i, "method": m, name: v, "flag": flags[i][m]} for i, v in zip(ids, values)]
        entries[m] = ctx.entry(values, base, **({"threshold": thresholds[m]} if m in thresholds else {}))
    details = {"baselines": {"average_mask": summarize(base, seed=ctx.seed).as_dict()},
               "baseline": criterion.baseline}
    if name == "pointing_game":
        details["ties"] = ties
    if name == "miou":
        details.update(thresholds=thresholds, tuning_images=len(plan.tuning_ids), binarization="map > threshold",
                       threshold_grid=list(extra.MIOU_THRESHOLDS))
    baseline_rows = [{"image_id": i, "baseline": "average_mask", name: v} for i, v in zip(ids, base)]
    return ctx.result(entries, {criterion.table: pd.DataFrame(rows),
                                criterion.baseline_table: pd.DataFrame(baseline_rows)},
                      n_images=len(ids), **details)
