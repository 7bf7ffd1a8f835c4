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


def _source_key(dataset) -> str:
    """What the baseline depends on beyond the labels: the dataset's folder and its mask files' sizes and
    times (a corrected mask, or another copy of the tree sharing the split file, gets a file of its own)."""
    import hashlib

    digest = hashlib.sha256(dataset.source_fingerprint.encode())
    digest.update(str(Path(dataset.root).resolve()).encode())
    for image_id in sorted(dataset._all):
        path = dataset._all[image_id].mask_path
        if path is not None:
            try:
                stat = Path(path).stat()
                digest.update(f"{image_id}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(f"{image_id}:missing".encode())
    return digest.hexdigest()[:16]


def baseline_path(dataset, size: int, resize: str = "stretch") -> Path:
    split_file = Path(dataset.split_file)
    return split_file.with_name(f"{split_file.stem}.average_mask_{int(size)}_{resize}_{_source_key(dataset)}.npz")


def _film_stamp(path) -> str:
    try:
        stat = Path(path).stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        return "missing"


def stored_baseline(dataset, size: int, resize: str = "stretch") -> tuple[np.ndarray, dict[str, tuple[str, str]]] | None:
    """(the average mask, the train/val films it left out: image id → (why, skip reason)) when stored for this
    dataset and still true (none of the films left out has changed since: a repaired film is read again),
    else None."""
    if dataset.split is not None:
        return None
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
    left_out = {i: (entry["why"], entry["reason"]) for i, entry in meta.get("left_out", {}).items()}
    for image_id, entry in meta.get("left_out", {}).items():
        record = dataset._all.get(image_id)
        if record is None or _film_stamp(record.path) != entry["stamp"]:
            return None  # a film left out then has changed (or gone): compute again
    return prior, left_out


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
    if not ids:
        from ..errors import DatasetError

        raise DatasetError(f"the average-mask baseline is the mean mask of the train and validation films, and "
                           f"{dataset.root} has none here (a dataset opened on one split has no others)",
                           path=dataset.split_file)
    total = np.zeros((int(size), int(size)), np.float64)
    for image_id in ids:
        total += dataset.mask(image_id, size, resize)
    prior = (total / max(1, len(ids))).astype(np.float32)
    if store and getattr(dataset, "save_splits", True) and dataset.split is None:
        save_baseline(dataset, size, resize, prior)
    return prior


def save_baseline(dataset, size: int, resize: str, prior: np.ndarray) -> Path | None:
    """Write the baseline file atomically (None, with a note, when its folder cannot be written)."""
    from ..io import atomic_write

    path = baseline_path(dataset, size, resize)
    reason_of = {i: reason for reason, items in dataset.skipped.reasons.items() for i in items}
    left_out = {}
    for image_id, why in dataset.unreadable.items():
        if dataset.splits.get(image_id) in ("train", "val"):
            record = dataset.record_of_any(image_id)
            left_out[image_id] = {"why": why, "reason": reason_of.get(image_id, "unreadable films"),
                                  "stamp": _film_stamp(record.path) if record is not None else "missing"}
    meta = {"version": BASELINE_VERSION, "size": int(size), "resize": resize,
            "fingerprint": dataset.source_fingerprint, "images": len(prior_ids(dataset)), "left_out": left_out}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, prior=prior, meta=np.array(json.dumps(meta)))
    try:
        atomic_write(path, buffer.getvalue())
    except OSError as exc:
        warnings.warn(f"the average-mask baseline could not be stored at {path} ({exc}): a rerun computes it "
                      f"again", RuntimeWarning, stacklevel=2)
        return None
    return path
