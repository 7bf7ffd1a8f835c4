"""A human ceiling for localization: how well each radiologist's own reading agrees with the consensus of the
others, scored with the same localization metrics as the saliency maps (CheXlocalize's human benchmark,
Saporta et al. 2022).

Where a dataset carries several readings of a film (VinDr-CXR's training films: three radiologists each),
each reader's boxes become a binary map R scored against the others' consensus G — the pixels marked by at
least half of the other readers (⌈m/2⌉ of m: with three readers, either of the other two), whatever the
run's ``--readers`` rule — as the evaluation scores a saliency map against its ground truth: drawn at the
film's native resolution, then brought to the evaluation's size and framing by the dataset's own mask rule
(:meth:`~trust_core.data.datasets.RadiographDataset.framed_mask`), like the ground truth the maps were
scored against. (That ground truth is the run's consensus of all readers; each reader's reference leaves
the reader out, as CheXlocalize's benchmark radiologists are scored against others' annotations.)

* mIoU: |R ∩ G| / |R ∪ G| (a binary map needs no threshold);
* pointing game: a hit when R marks a pixel inside G (a binary map's maxima are all of R; ties "any", as
  the evaluation's unclipped pointing game); a reader who marks nothing misses;
* energy pointing game: |R ∩ G| / |R| (0 when R is empty);
* AUPRC: the area under the precision–recall curve of R's values (0/1) against G, computed as the
  evaluation's; a reader who marks nothing ranks no pixel above another: the prevalence |G| / N (a constant
  map's precision at every recall), not the trapezoid from (0, 1) a flat map would otherwise get.

A film's ceiling is the mean over its readers; films where the others' consensus is empty are left out.
Datasets with one reading per film (RSNA, SIIM, NIH, CheXlocalize, VinDr's official test consensus) have no
ceiling, and say so.
"""
from __future__ import annotations

import math

import numpy as np

# evaluation criterion → the column of the ceiling table that scores a reader the same way
CEILING_COLUMNS = {"miou": "miou", "pointing_game": "pointing_game", "energy_pointing_game": "energy_pointing_game",
                   "utility": "auprc"}


def reader_agreement(reader: np.ndarray, consensus: np.ndarray) -> dict[str, float]:
    """One reader's binary map against a consensus mask (see the module docstring)."""
    from ..metrics import auprc

    reader, consensus = np.asarray(reader, bool), np.asarray(consensus, bool)
    both = float(np.logical_and(reader, consensus).sum())
    marked = float(reader.sum())
    union = float(np.logical_or(reader, consensus).sum())
    return {"miou": both / union if union else float("nan"),
            "pointing_game": 1.0 if both > 0 else 0.0,
            "energy_pointing_game": both / marked if marked else 0.0,
            "auprc": float(auprc(reader.astype(np.float32), consensus)) if marked else
            float(consensus.sum()) / consensus.size}


def readings_of(dataset, image_id: str) -> list[np.ndarray]:
    """Every reader's own mask of a film at native resolution ([] for single-reading datasets)."""
    from ..data.records import Record

    record = dataset.record(image_id)
    readings = getattr(record, "readings", ())
    if len(readings) < 2:
        return []
    height, width = dataset.native_shape(image_id)
    return [dataset._render_boxes(Record(image_id, record.path, 1, tuple(boxes)), height, width) for boxes in readings]


def film_ceiling(masks: list[np.ndarray], frame=None) -> dict[str, float] | None:
    """The mean of each reader's agreement with the others' consensus; None when no reader's consensus of
    the others marks anything (nothing to agree on) or fewer than two readings. ``frame`` brings a native
    mask to the scored size (default: scored at native resolution)."""
    if len(masks) < 2:
        return None
    frame = frame or (lambda mask: mask)
    scores = []
    votes = np.sum(np.stack(masks).astype(np.int16), axis=0)
    for k, mine in enumerate(masks):
        others = votes - mine
        consensus = frame(others >= max(1, math.ceil((len(masks) - 1) / 2)))
        if consensus.any():
            scores.append(reader_agreement(frame(mine), consensus))
    if not scores:
        return None
    return {key: float(np.nanmean([s[key] for s in scores])) for key in scores[0]} | {"readers": len(scores)}


def human_ceiling(dataset, image_ids, *, size: int | None = None, resize: str = "stretch") -> tuple["pd.DataFrame", str]:
    """One row per film with several readings (its ceiling per metric, scored at ``size`` framed by
    ``resize``, as the evaluation scored the maps; None: native resolution) and a line saying what was found."""
    import pandas as pd

    frame = None if size is None else (lambda mask: dataset.framed_mask(mask, size, resize))
    rows = []
    for image_id in image_ids:
        ceiling = film_ceiling(readings_of(dataset, image_id), frame)
        if ceiling is not None:
            rows.append({"image_id": image_id, **ceiling})
    table = pd.DataFrame(rows, columns=["image_id", *CEILING_COLUMNS.values(), "readers"])
    if not len(table):
        kind = getattr(dataset, "kind", "this dataset")
        note = (f"no human ceiling: the evaluated {kind} films carry one reading each (a human ceiling needs several "
                f"radiologists' annotations of a film, as VinDr-CXR's training films have)")
    else:
        note = (f"human ceiling from {len(table)} films with several readings (each reader against the others' "
                f"consensus, mean {table.readers.mean():.1f} readers per film)")
    return table, note
