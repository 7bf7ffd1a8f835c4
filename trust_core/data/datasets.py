"""Datasets of chest radiographs with localization ground truth, read exactly as distributed: the base class.

The layouts, each read by its own class:

* :class:`~trust_core.data.kaggle.RSNADataset` — RSNA Pneumonia Detection (Kaggle stage 2):
  ``stage_2_train_labels.csv`` (``patientId,x,y,width,height,Target``, one row per box),
  ``stage_2_train_images/<patientId>.dcm``, optional ``stage_2_detailed_class_info.csv``.
* :class:`~trust_core.data.kaggle.SIIMDataset` — SIIM-ACR Pneumothorax: ``train-rle.csv`` (``ImageId,
  EncodedPixels``, relative column-major RLE, ``-1`` = none, several rows per image unioned), DICOMs nested
  as ``<study>/<series>/<ImageId>.dcm``.
* :class:`~trust_core.data.folder.FolderDataset` — PNG/JPEG/DICOM files in ``images/`` with ``labels.csv``
  (``image_id,label``) and optional ``boxes.csv`` (``image_id,x,y,width,height``) or ``masks/<image_id>.png``.
* NIH ChestX-ray14, VinDr-CXR and CheXlocalize: :mod:`trust_core.data.findings` (the layouts; NIH there,
  the others in :mod:`~trust_core.data.vindr` and :mod:`~trust_core.data.chexlocalize`).

Every dataset yields :class:`~trust_core.data.records.Sample` (image id, model-ready tensor, binary mask,
label, split). Problems are either raised as :class:`~trust_core.errors.DatasetError` (the data cannot be
trusted: wrong columns, bad numbers, contradictory labels, malformed RLE) or skipped and counted in
:attr:`RadiographDataset.skipped` (an image without labels, labels without an image, exact duplicate
rows), so that a report can say how many and which. Reading the films beforehand:
:mod:`trust_core.data.screening`.
"""
from __future__ import annotations

import abc
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DatasetError, DicomError, ImageError
from .groundtruth import DEFAULT_MASK_RULE, MASK_RULES, rasterize
from .images import IMAGE_SUFFIXES, FilmWarning, load_radiograph
from .records import (DEFAULT_FRACTIONS, SPLIT_FILE, SPLITS, Box, Record, Sample, Skip, number_of, make_splits,
                      read_csv, write_splits)
from .rle import rle_decode
from .screening import FilmScreening
from .transforms import crop_window, frame, resize_image, to_model_input



class RadiographDataset(FilmScreening, abc.ABC):
    """Common machinery: records, splits, images and masks at any size, fingerprint.

    Parameters
    ----------
    root : dataset folder.
    image_size : side of the square model input produced by ``__getitem__``.
    split : restrict iteration to one split ('train', 'val', 'test') or None for all.
    split_file : CSV ``image_id,split``; when missing, a stratified split is made with ``seed`` and
        ``fractions`` and written there (default ``<root>/splits.csv``).
    mask_rule : how ground truth becomes a mask at the model size: 'paper' (the authors' scripts:
        truncated, inclusively filled boxes; resized masks binarized with ``!= 0``) or 'coverage'
        (a pixel is in when half its area is lesion); see :mod:`trust_core.data.groundtruth`.
    """

    kind = "base"
    # the constructor's arguments that choose the images beyond the files (RSNA's classes, a finding and its
    # negatives rule, a reader rule), recorded under the same names in :attr:`selection`
    SELECTION_ARGS: tuple[str, ...] = ()

    def __init__(self, root: str | Path, *, image_size: int = 320, split: str | None = None,
                 split_file: str | Path | None = None, seed: int = 0,
                 fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, mask_rule: str = DEFAULT_MASK_RULE,
                 save_splits: bool = True):
        self.root = Path(root)
        self.save_splits = save_splits  # False: a made split stays in memory (read-only commands: check, inspect)
        if self.root.is_file():
            raise DatasetError(f"{self.root} is a file: give the dataset's folder (the one holding its label CSV and "
                               f"images), KIND:FOLDER")
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder not found: {self.root}")
        if split is not None and split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose one of {SPLITS}")
        if mask_rule not in MASK_RULES:
            raise DatasetError(f"unknown mask rule {mask_rule!r}; choose one of {MASK_RULES}")
        self.mask_rule = mask_rule
        self.image_size = int(image_size)
        self.skipped = Skip()
        records = self._scan()
        if not records:
            raise DatasetError(f"no labelled images found in {self.root} "
                               f"(skipped: {self.skipped.counts or 'none'})")
        self.split_file = Path(split_file) if split_file else self.root / self._split_name()
        # Splits cover every labelled image, so that an image's split never depends on a filter.
        self.splits = self._load_or_make_splits(records, seed, fractions)
        kept = []
        self.selection_reasons: dict[str, str] = {}  # image id → why the selection (classes, finding…) leaves it out
        for r in records:
            reason = self._excluded(r)
            if reason:
                self.skipped.add(reason, r.image_id)
                self.selection_reasons[r.image_id] = reason
            else:
                kept.append(r)
        if not kept:
            raise DatasetError(f"no image of {self.root} is left after the selection {self.selection}")
        self._all = {r.image_id: r for r in kept if r.image_id in self.splits}
        self.split = split
        self.records = [r for r in self._all.values() if split is None or self.splits[r.image_id] == split]
        self._shape_cache: dict[str, tuple[int, int]] = {}
        self.unreadable: dict[str, str] = {}  # films left out by screen(): image id → why (the error message)
        self.film_warnings: dict[str, str] = {}  # films read, but not as their container says (FilmWarning)
        # the bit depth this dataset's films were found to need where their depth is inferred (16-bit images
        # without sBIT): the deepest of the films screened, so that a dim film of a 12-bit detector is not read
        # as 10-bit, 4× brighter than its neighbours (see screen())
        self.film_depth: int | None = None
        self.inferred_depths: dict[str, int] = {}
        self.depth_note: str | None = None  # set when films needed different depths (see _settle_depth)

    # -- subclass hook -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _scan(self) -> list[Record]:
        """Read the labels and find the images: the records, with skips counted in ``self.skipped``."""

    def _excluded(self, record: Record) -> str | None:
        """Why a labelled image is left out by the dataset's selection (None: kept)."""
        return None

    def _split_name(self) -> str:
        """The split file's name in the dataset folder (multi-finding datasets: one per finding)."""
        return SPLIT_FILE

    def _add_box(self, boxes: dict, image_id: str, row: dict, line: int, path: Path) -> None:
        """One ``x, y, width, height`` row of a box file into ``boxes[image_id]`` (validated; an exact
        duplicate is a counted skip)."""
        box = Box(*(number_of(row, c, line, path) for c in ("x", "y", "width", "height")))
        if box.width <= 0 or box.height <= 0:
            raise DatasetError(f"line {line}: box of {image_id!r} has a non-positive size "
                               f"({box.width} x {box.height})", path=path)
        self._add_unique(boxes, image_id, box, "duplicate box rows")

    def _add_unique(self, items: dict, image_id: str, value, reason: str) -> None:
        """``value`` into ``items[image_id]``, or a counted skip when that row was there already."""
        if value in items[image_id]:
            self.skipped.add(reason, image_id)
        else:
            items[image_id].append(value)

    def _join(self, labelled, files: dict[str, Path]) -> list[str]:
        """The labelled ids that have an image file, sorted; labels without a file and files without
        labels are counted skips."""
        ids = []
        for image_id in sorted(labelled):
            if image_id in files:
                ids.append(image_id)
            else:
                self.skipped.add("labels without an image file", image_id)
        for image_id in sorted(files.keys() - set(labelled)):
            self.skipped.add("image files without labels", image_id)
        return ids

    def __contains__(self, image_id: str) -> bool:
        """Whether ``image_id`` is one of this dataset's images (after its selection)."""
        return image_id in self._all

    # -- splits --------------------------------------------------------------------------------------
    def _load_or_make_splits(self, records, seed, fractions) -> dict[str, str]:
        ids = {r.image_id for r in records}
        if self.split_file.is_file():
            rows = read_csv(self.split_file, ("image_id", "split"), what="split file")
            splits: dict[str, str] = {}
            for line, row in enumerate(rows, start=2):
                if row["split"] not in SPLITS:
                    raise DatasetError(f"line {line}: unknown split {row['split']!r}; expected one of "
                                       f"{SPLITS}", path=self.split_file)
                if row["image_id"] in splits and splits[row["image_id"]] != row["split"]:
                    raise DatasetError(f"line {line}: image {row['image_id']!r} is assigned to two "
                                       f"splits", path=self.split_file)
                splits[row["image_id"]] = row["split"]
            for image_id in sorted(ids - splits.keys()):
                self.skipped.add("not in the split file", image_id)
            return {i: s for i, s in splits.items() if i in ids}
        return self._save_splits(make_splits({r.image_id: r.label for r in records}, seed=seed, fractions=fractions))

    def _save_splits(self, splits: dict[str, str]) -> dict[str, str]:
        """Write a newly made split to the split file and return it (kept in memory only when the dataset is
        opened not to write: the split is deterministic from the seed)."""
        if not self.save_splits:
            return splits
        try:
            write_splits(self.split_file, splits)
        except OSError:
            pass  # read-only dataset: the split is still deterministic from the seed
        return splits

    # -- access ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        return Sample(image_id=record.image_id,
                      image=to_model_input(self.image(record.image_id, self.image_size)),
                      mask=self.mask(record.image_id, self.image_size),
                      label=record.label, split=self.splits[record.image_id])

    def ids(self, split: str | None = None, label: int | None = None) -> list[str]:
        """Image ids (sorted) of this dataset (its split, if it has one), optionally of one split/label."""
        return sorted(i for i, r in self._all.items()
                      if (self.split is None or self.splits[i] == self.split)
                      and (split is None or self.splits[i] == split) and (label is None or r.label == label))

    def record_of_any(self, image_id: str) -> Record | None:
        """The record of an image, kept or left out as unreadable (None when the dataset never had it)."""
        return self._all.get(image_id) or self.__dict__.get("_left_out", {}).get(image_id)

    def record(self, image_id: str) -> Record:
        try:
            return self._all[image_id]
        except KeyError:
            raise DatasetError(f"unknown image id {image_id!r} in {self.kind} dataset {self.root}") from None

    def label(self, image_id: str) -> int:
        return self.record(image_id).label

    def native_image(self, image_id: str) -> np.ndarray:
        """The display image at its native resolution, float32 (H, W) in [0, 1]."""
        image = load_radiograph(self.record(image_id).path, min_depth=self.film_depth)
        self._shape_cache[image_id] = image.shape
        return image

    def image(self, image_id: str, size: int | None = None, resize: str = "stretch") -> np.ndarray:
        """Display image resized (area interpolation) to (size, size), float32 in [0, 1]; ``resize``
        'center_crop' keeps the film's central square first (the mask follows the same rule)."""
        if resize == "stretch":
            return resize_image(self.native_image(image_id), size or self.image_size)
        return frame(self.native_image(image_id), size or self.image_size, resize)

    def native_shape(self, image_id: str) -> tuple[int, int]:
        if image_id not in self._shape_cache:
            record = self.record(image_id)
            if record.path.suffix.lower() in IMAGE_SUFFIXES:
                from PIL import Image
                try:
                    with Image.open(record.path) as img:
                        self._shape_cache[image_id] = (img.height, img.width)
                except Exception as exc:
                    raise ImageError(f"not a readable image file ({type(exc).__name__}: {str(exc)[:200]})",
                                     path=record.path) from None
            else:
                import pydicom
                try:
                    ds = pydicom.dcmread(record.path, stop_before_pixels=True)
                    self._shape_cache[image_id] = (int(ds.Rows), int(ds.Columns))
                except Exception as exc:
                    raise DicomError(f"cannot read the image size ({exc})", path=record.path) from None
        return self._shape_cache[image_id]

    def native_mask(self, image_id: str) -> np.ndarray:
        """Ground-truth mask at the image's native resolution (bool)."""
        boxes, other = self._native_parts(image_id)
        return boxes | other

    def mask(self, image_id: str, size: int | tuple[int, int] | None = None, resize: str = "stretch") -> np.ndarray:
        """Ground-truth mask at ``size`` by the dataset's ``mask_rule``, framed like :meth:`image`."""
        record = self.record(image_id)
        boxes, other = self._native_parts(image_id)
        y0, x0, h, w = crop_window(boxes.shape, resize)
        if (h, w) != boxes.shape:  # the kept part: boxes shifted into it, drawn masks cropped
            shifted = [Box(b.x - x0, b.y - y0, b.width, b.height) for b in record.boxes]
            return rasterize(boxes=shifted, native_box_mask=boxes[y0:y0 + h, x0:x0 + w],
                             other_mask=other[y0:y0 + h, x0:x0 + w], native=(h, w),
                             size=size or self.image_size, rule=self.mask_rule)
        return rasterize(boxes=record.boxes, native_box_mask=boxes, other_mask=other, native=boxes.shape,
                         size=size or self.image_size, rule=self.mask_rule)

    def framed_mask(self, native_mask: np.ndarray, size: int | None = None, resize: str = "stretch") -> np.ndarray:
        """A mask drawn at a film's native resolution (a reader's own boxes, a consensus) brought to ``size``
        as :meth:`mask` brings the dataset's own non-box ground truth there: framed by ``resize``, resized by
        the dataset's ``mask_rule``."""
        y0, x0, h, w = crop_window(native_mask.shape, resize)
        part = native_mask[y0:y0 + h, x0:x0 + w]
        return rasterize(other_mask=part, native=part.shape, size=size or self.image_size, rule=self.mask_rule)

    def _native_parts(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        record = self.record(image_id)
        height, width = self.native_shape(image_id)
        return self._render_boxes(record, height, width), self._render_mask(record, height, width)

    def boxes(self, image_id: str, size: int | None = None, resize: str = "stretch") -> list[Box]:
        """Boxes of an image, scaled to a (size, size) image when size is given (framed like :meth:`image`)."""
        record = self.record(image_id)
        if size is None and resize == "stretch":
            return list(record.boxes)
        y0, x0, height, width = crop_window(self.native_shape(image_id), resize)
        sx, sy = (size / width, size / height) if size else (1.0, 1.0)
        return [Box((b.x - x0) * sx, (b.y - y0) * sy, b.width * sx, b.height * sy) for b in record.boxes]

    def _labels_path(self, record: Record) -> Path:
        """The file that holds this record's ground truth (what to fix when it is wrong)."""
        labels = getattr(self, "LABELS", None)
        return self.root / labels if labels else self.root / "boxes.csv" if record.boxes else record.path

    def _render_boxes(self, record: Record, height: int, width: int) -> np.ndarray:
        """The record's boxes filled at native resolution (validated: none may lie outside)."""
        mask = np.zeros((height, width), dtype=bool)
        for box in record.boxes:
            x0, y0 = int(round(box.x)), int(round(box.y))
            x1, y1 = int(round(box.x + box.width)), int(round(box.y + box.height))
            if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
                raise DatasetError(f"image {record.image_id!r}: box {box} lies entirely outside the "
                                   f"{width}x{height} image", path=self._labels_path(record))
            mask[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)] = True
        return mask

    def _render_mask(self, record: Record, height: int, width: int) -> np.ndarray:
        """The record's RLE rows and mask file at native resolution."""
        mask = np.zeros((height, width), dtype=bool)
        for rle in record.rles:
            try:
                mask |= rle_decode(rle, height, width)
            except DatasetError as exc:
                raise DatasetError(f"image {record.image_id!r}: {exc.reason}", path=self._labels_path(record)) from None
        for rle_height, rle_width, counts in record.coco:
            if (rle_height, rle_width) != (height, width):
                raise DatasetError(f"image {record.image_id!r}: its RLE is {rle_height}×{rle_width} but the image "
                                   f"{record.path.name} is {height}×{width}: the segmentation belongs to another "
                                   f"image or resolution", path=self._labels_path(record))
            from pycocotools import mask as coco_mask

            try:
                mask |= coco_mask.decode({"size": [rle_height, rle_width], "counts": counts.encode()}).astype(bool)
            except (ValueError, TypeError) as exc:
                raise DatasetError(f"image {record.image_id!r}: its RLE cannot be decoded ({exc}); the counts string "
                                   f"is corrupt", path=self._labels_path(record)) from None
        if record.reader_boxes:  # where enough readers' boxes overlap
            votes = np.zeros((height, width), dtype=np.int16)
            for reader in record.reader_boxes:
                votes += self._render_boxes(Record(record.image_id, record.path, 1, reader), height, width)
            mask |= votes >= max(1, record.min_readers)
        if record.mask_path is not None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FilmWarning)  # a mask's scale does not matter (> 0 or > ½)
                mask_image = load_radiograph(record.mask_path)
            if mask_image.shape != (height, width):
                # never resized onto the film: a transposed or cropped mask would be scored as ground truth
                turned = mask_image.shape == (width, height)
                try:
                    shown = record.mask_path.relative_to(self.root)
                except ValueError:
                    shown = record.mask_path.name
                raise DatasetError(
                    f"image {record.image_id!r}: its mask {shown} is {mask_image.shape[1]}×{mask_image.shape[0]} (width×height) "
                    f"but the film {record.path.name} is {width}×{height}"
                    + (": the mask is transposed (rows and columns swapped when it was saved)" if turned else
                       ": a mask must have its film's exact pixel size")
                    + "; point the dataset at a corrected copy of the mask, at the film's size (this tool never "
                      "changes your files)", path=record.mask_path)
            mask |= mask_image > 0.5 if mask_image.max() > 0.5 else mask_image > 0
        return mask

    def reopen_kwargs(self) -> dict:
        """What reopens this dataset elsewhere (a Ray worker, a ``check`` worker process): its class's
        arguments, the selection included (RSNA's classes — None, all, travels too — a finding's, a reader
        rule), and the split file it uses."""
        return {"image_size": self.image_size, "split_file": str(self.split_file), "mask_rule": self.mask_rule,
                "save_splits": self.save_splits, **{key: getattr(self, key) for key in self.SELECTION_ARGS}}

    @classmethod
    def selection_kwargs(cls, recorded: dict) -> dict:
        """The arguments that reopen the selection a results folder records (its ``config.json``'s dataset,
        which holds :attr:`selection`): what the app opens to show the images the scorecard counted."""
        return {key: recorded[key] for key in cls.SELECTION_ARGS if key in recorded}

    # -- summaries -----------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Counts per split and label, and what was skipped and why."""
        counts = Counter((self.splits[i], r.label) for i, r in self._all.items())
        return {
            "kind": self.kind, "root": str(self.root), "images": len(self._all),
            "per_split": {s: {"positive": counts[(s, 1)], "negative": counts[(s, 0)]} for s in SPLITS},
            "skipped": self.skipped.counts,
            "mask_rule": self.mask_rule,
            **self.selection,
            "fingerprint": self.fingerprint,
        }

    @property
    def selection(self) -> dict:
        """Which images the dataset keeps beyond its files (RSNA: its classes), for results."""
        return {}

    @property
    def source_fingerprint(self) -> str:
        """The :attr:`fingerprint` of the dataset as opened, before any film found unreadable left it: what
        names the files derived from the labels (the stored average-mask baseline), the same on a rerun that
        has not read the films yet."""
        if getattr(self, "_source_fingerprint", None) is None:
            self._source_fingerprint = self.fingerprint
        return self._source_fingerprint

    @property
    def fingerprint(self) -> str:
        """Digest of ids, labels, annotations and splits: changes whenever the ground truth does."""
        digest = hashlib.sha256(self.kind.encode())
        digest.update(json.dumps([self.mask_rule, self.selection], sort_keys=True).encode())
        for image_id in sorted(self._all):
            r = self._all[image_id]
            parts = [image_id, r.label, self.splits[image_id], [(b.x, b.y, b.width, b.height) for b in r.boxes],
                     list(r.rles), str(r.mask_path.name) if r.mask_path else ""]
            if r.coco or r.reader_boxes:  # (absent for the older kinds: their fingerprints are unchanged)
                parts += [list(r.coco), [[(b.x, b.y, b.width, b.height) for b in rb] for rb in r.reader_boxes],
                          r.min_readers]
            digest.update(json.dumps(parts).encode())
        return digest.hexdigest()[:16]


