"""The average-mask baseline, computed once per dataset, selection and size, and kept beside the split file.

The low baseline of every localization criterion is the mean ground-truth mask of the train and validation
films (protocol.md section 4), framed and sized like the maps. Computing it reads every one of those films'
headers (11,869 DICOMs for RSNA: seconds), so it is stored as ``<split file>.average_mask_<size>_<resize>_
<dataset fingerprint>.npz`` beside the split file, with the films left out because they could not be read;
a rerun reads that file instead (well under a second). The name changes whenever the ground truth, the
splits, the selection or the mask rule do (the dataset's fingerprint covers them), so a stale baseline is
never read. A dataset opened read-only (``save_splits=False``: ``check``, ``inspect``) computes it without
writing; a folder that cannot be written is used without storing, and said once.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np

BASELINE_VERSION = "average-mask-1"


def baseline_path(dataset, size: int, resize: str = "stretch") -> Path:
    split_file = Path(dataset.split_file)
    return split_file.with_name(f"{split_file.stem}.average_mask_{int(size)}_{resize}_{dataset.source_fingerprint}.npz")


def stored_baseline(dataset, size: int, resize: str = "stretch") -> tuple[np.ndarray, dict[str, str]] | None:
    """(the average mask, the train/val films it left out as unreadable) when stored for this dataset, else None."""
    path = baseline_path(dataset, size, resize)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            prior = np.asarray(data["prior"], np.float32)
    except (OSError, ValueError, KeyError) as exc:
        warnings.warn(f"the stored average-mask baseline {path} cannot be read ({exc}): computing it again",
                      RuntimeWarning, stacklevel=2)
        return None
    if meta.get("version") != BASELINE_VERSION or prior.shape != (int(size), int(size)):
        return None
    return prior, dict(meta.get("unreadable", {}))


def prior_ids(dataset) -> list[str]:
    """The films whose masks make the baseline: train + validation, as the dataset holds them now."""
    return dataset.ids(split="train") + dataset.ids(split="val")


def average_mask(dataset, size: int, resize: str = "stretch", *, store: bool = True) -> np.ndarray:
    """The mean ground-truth mask (``size``², float32) of the train and validation films: read from its file
    when stored, else computed (one mask in memory at a time) and stored (``store`` and the dataset's
    ``save_splits`` permitting)."""
    found = stored_baseline(dataset, size, resize)
    if found is not None:
        return found[0]
    ids = prior_ids(dataset)
    total = np.zeros((int(size), int(size)), np.float64)
    for image_id in ids:
        total += dataset.mask(image_id, size, resize)
    prior = (total / max(1, len(ids))).astype(np.float32)
    if store and getattr(dataset, "save_splits", True):
        save_baseline(dataset, size, resize, prior)
    return prior


def save_baseline(dataset, size: int, resize: str, prior: np.ndarray) -> Path | None:
    """Write the baseline file atomically (None, with a note, when its folder cannot be written)."""
    from ..io import atomic_write

    path = baseline_path(dataset, size, resize)
    unreadable = {i: why for i, why in dataset.unreadable.items() if dataset.splits.get(i) in ("train", "val")}
    meta = {"version": BASELINE_VERSION, "size": int(size), "resize": resize, "fingerprint": dataset.source_fingerprint,
            "images": len(prior_ids(dataset)), "unreadable": unreadable}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, prior=prior, meta=np.array(json.dumps(meta)))
    try:
        atomic_write(path, buffer.getvalue())
    except OSError as exc:
        warnings.warn(f"the average-mask baseline could not be stored at {path} ({exc}): a rerun computes it "
                      f"again", RuntimeWarning, stacklevel=2)
        return None
    return path
