"""Datasets of chest radiographs with localization ground truth, read exactly as distributed.

* :class:`RSNADataset` — RSNA Pneumonia Detection (Kaggle stage 2): ``stage_2_train_labels.csv``
  (``patientId,x,y,width,height,Target``, one row per box), ``stage_2_train_images/<patientId>.dcm``,
  optional ``stage_2_detailed_class_info.csv``.
* :class:`SIIMDataset` — SIIM-ACR Pneumothorax: ``train-rle.csv`` (``ImageId, EncodedPixels``, relative
  column-major RLE, ``-1`` = none, several rows per image unioned), DICOMs nested as
  ``<study>/<series>/<ImageId>.dcm``.
* :class:`FolderDataset` — PNG/JPEG/DICOM files in ``images/`` with ``labels.csv`` (``image_id,label``)
  and optional ``boxes.csv`` (``image_id,x,y,width,height``) or ``masks/<image_id>.png``.

Every dataset yields :class:`Sample` (image id, model-ready tensor, binary mask, label, split). Problems
are either raised as :class:`~trust_core.errors.DatasetError` (the data cannot be trusted: wrong
columns, bad numbers, contradictory labels, malformed RLE) or skipped and counted in
:attr:`RadiographDataset.skipped` (an image without labels, labels without an image, exact duplicate
rows), so that a report can say how many and which.
"""
from __future__ import annotations

import abc
import csv
import hashlib
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError, DicomError, ImageError, TrustError
from ..io import atomic_write
from .dicom import IMAGE_SUFFIXES, FilmWarning, film_range_note, load_radiograph
from .groundtruth import DEFAULT_MASK_RULE, MASK_RULES, rasterize
from .rle import rle_decode
from .transforms import crop_window, frame, resize_image, to_model_input

SPLITS = ("train", "val", "test")
UNREADABLE = "unreadable films"  # the skip reason of films left out by :meth:`RadiographDataset.screen`
UNUSABLE_TRUTH = "unusable ground truth"  # … and of films whose mask cannot be used (another size)
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
SPLIT_FILE = "splits.csv"


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Record:
    """One image and its annotation (boxes, RLE strings or a mask file)."""

    image_id: str
    path: Path
    label: int
    boxes: tuple[Box, ...] = ()
    rles: tuple[str, ...] = ()
    mask_path: Path | None = None
    category: str = ""
    coco: tuple[tuple[int, int, str], ...] = ()  # COCO RLEs (height, width, counts): CheXlocalize
    reader_boxes: tuple[tuple[Box, ...], ...] = ()  # one box set per reader, combined by ``min_readers``
    min_readers: int = 0  # a pixel is ground truth where at least this many readers' boxes cover it
    # every reader's own reading of the film, whatever the reader rule (one box set per reader who read it,
    # empty for a reader who did not mark the finding): the human ceiling (trust_core.analysis.ceiling)
    readings: tuple[tuple[Box, ...], ...] = ()


@dataclass(frozen=True)
class Sample:
    image_id: str
    image: "object"  # torch.Tensor (3, S, S) in [-1, 1]
    mask: np.ndarray  # bool (S, S)
    label: int
    split: str


@dataclass
class Skip:
    """Items left out while reading a dataset, by reason (a counted, reported skip)."""

    reasons: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, reason: str, item: str) -> None:
        self.reasons[reason].append(item)

    @property
    def counts(self) -> dict[str, int]:
        return {reason: len(items) for reason, items in self.reasons.items()}

    def __len__(self) -> int:
        return sum(self.counts.values())


def read_csv(path: Path, required: tuple[str, ...], *, what: str) -> list[dict[str, str]]:
    """Read a label CSV (BOM, CRLF and padded header names tolerated), checking its columns."""
    if not path.is_file():
        raise DatasetError(f"{what} not found", path=path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{what} is not UTF-8 text", path=path) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(f"{what} lacks the column(s) {missing}; found {header or 'no header'}; "
                           f"expected {list(required)}", path=path)
    rows = []
    for row in reader:
        rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None})
    return rows


def _number(row: dict, key: str, line: int, path: Path) -> float:
    return parse_number(row.get(key), line, key, path)


def parse_number(text, line: int, column: str, path: Path) -> float:
    """A label file's number, or an error naming the file, the line and the column."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DatasetError(f"line {line}: column '{column}' must be a number, got {text!r}", path=path) from None
    if not np.isfinite(value):
        raise DatasetError(f"line {line}: column '{column}' is not finite ({text!r})", path=path)
    return value


class RadiographDataset(abc.ABC):
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

    def __init__(self, root: str | Path, *, image_size: int = 320, split: str | None = None,
                 split_file: str | Path | None = None, seed: int = 0,
                 fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, mask_rule: str = DEFAULT_MASK_RULE,
                 save_splits: bool = True):
        self.root = Path(root)
        self.save_splits = save_splits  # False: a made split stays in memory (read-only commands: check, inspect)
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
        for r in records:
            reason = self._excluded(r)
            if reason:
                self.skipped.add(reason, r.image_id)
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
        box = Box(*(_number(row, c, line, path) for c in ("x", "y", "width", "height")))
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
        kwargs = {"image_size": self.image_size, "split_file": str(self.split_file), "mask_rule": self.mask_rule,
                  "save_splits": self.save_splits}
        if hasattr(self, "classes"):
            kwargs["classes"] = self.classes
        for key in ("finding", "negatives", "readers"):
            if hasattr(self, key):
                kwargs[key] = getattr(self, key)
        return kwargs

    def validate(self, ids=None, *, progress=None, notes: list | None = None,
                 found: list | None = None) -> list[TrustError]:
        """Decode every image and render every ground truth; return the problems (nothing is changed).

        A multi-hour evaluation stops at the first unreadable file; this finds them all beforehand.
        ``notes``: a list that receives the warnings (``"<file>: <why>"``) about films that were read but look
        wrong: a depth inferred from the values (:class:`~trust_core.data.dicom.FilmWarning`), an almost
        black or uniform film. ``found``: a list that receives ``(image_id, problem)`` for every problem.
        """
        import warnings

        problems: list[TrustError] = []
        for image_id in (sorted(self._all) if ids is None else ids):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", FilmWarning)
                    image = self.native_image(image_id)
                said = [str(w.message) for w in caught if issubclass(w.category, FilmWarning)]
                for w in caught:
                    if issubclass(w.category, FilmWarning) and getattr(w.message, "depth", None):
                        self.inferred_depths[image_id] = w.message.depth
                note = film_range_note(image)
                if note:
                    said.append(f"{self.record(image_id).path.name}: {note}")
                if notes is not None:
                    notes.extend(said)
                self.native_mask(image_id)
            except TrustError as exc:
                problems.append(exc)
                if found is not None:
                    found.append((image_id, exc))
            if progress is not None:
                progress(image_id)
        self._settle_depth()
        if notes is not None and self.depth_note:
            notes.append(f"{self.root.name}: {self.depth_note}")
        return problems

    def screen(self, ids, *, strict: bool = False, films: bool = True, limit: int | None = None,
               progress=None) -> list[str]:
        """Read the films ``ids`` (``films=False``: only their sizes, what a mask needs) and return those that
        read, in order (the first ``limit``). A film that cannot be read (a :class:`DicomError` or
        :class:`ImageError`, naming the file), or a positive film whose ground truth cannot be used (a mask of
        another size: :class:`DatasetError`), is left out of the dataset, listed in :attr:`unreadable` with
        its reason and counted under the skip :data:`UNREADABLE` (:data:`UNUSABLE_TRUTH`); ``strict`` raises
        it instead. Depths inferred
        from the values (:class:`FilmWarning`) are listed in :attr:`film_warnings`. Nothing on disk changes.
        """
        import warnings

        kept: list[str] = []
        for image_id in ids:
            if limit is not None and len(kept) >= limit:
                break
            if image_id in self.unreadable:
                continue
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", FilmWarning)
                    self.native_image(image_id) if films else self.native_shape(image_id)
                    if self.record(image_id).label:
                        self.native_mask(image_id)  # its ground truth too: a mask of another size, found now
                for w in caught:
                    if issubclass(w.category, FilmWarning):
                        self.film_warnings[image_id] = str(w.message)
                        if getattr(w.message, "depth", None):
                            self.inferred_depths[image_id] = w.message.depth
            except (DicomError, ImageError, DatasetError) as exc:
                if strict:
                    what = "a ground truth that cannot be used" if isinstance(exc, DatasetError) else \
                        "a film that cannot be read"
                    raise type(exc)(exc.reason + f" (--strict: {what} stops the run; without it the film is skipped "
                                    "and listed)", path=exc.path) from None
                self.exclude({image_id: str(exc)}, reason=UNUSABLE_TRUTH if isinstance(exc, DatasetError) else UNREADABLE)
            else:
                kept.append(image_id)
            if progress is not None:
                progress(image_id)
        self._settle_depth()
        return kept

    def _settle_depth(self) -> None:
        """One depth for the films whose depth is inferred: the deepest any of them needs. Films inferred
        shallower are named (they are read at that depth from now on, like their neighbours)."""
        if not self.inferred_depths:
            return
        deepest = max(self.inferred_depths.values())
        self.film_depth = max(deepest, self.film_depth or 0)
        shallower = sorted(i for i, d in self.inferred_depths.items() if d < self.film_depth)
        if shallower:
            counts = {}
            for d in self.inferred_depths.values():
                counts[d] = counts.get(d, 0) + 1
            self.depth_note = (f"films of this dataset need different depths by their values "
                               f"({', '.join(f'{d}-bit: {n}' for d, n in sorted(counts.items()))}): one detector has "
                               f"one depth, so all are read as {self.film_depth}-bit (a dim film is not read brighter "
                               f"than its neighbours); e.g. {', '.join(shallower[:3])}. Declare the depth in the PNGs "
                               f"(sBIT) if another is right")

    def exclude(self, unreadable: dict[str, str], *, reason: str = UNREADABLE) -> None:
        """Leave out films already found unreadable (image id → why), as :meth:`screen` does, without reading
        them again: how a worker rebuilding this dataset elsewhere (the Ray engine) sees the driver's dataset."""
        self.source_fingerprint  # noqa: B018 — fixed before the first film leaves
        for image_id, why in unreadable.items():
            if image_id in self.unreadable:
                continue
            self.unreadable[image_id] = why
            self.skipped.add(reason, image_id)
            record = self._all.pop(image_id, None)
            if record is not None:
                self.__dict__.setdefault("_left_out", {})[image_id] = record
        gone = set(unreadable)
        self.records = [r for r in self.records if r.image_id not in gone]

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


def make_splits(labels: dict[str, int], *, seed: int = 0,
                fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, str]:
    """Stratified, seeded train/val/test assignment (independent of listing order)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise DatasetError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    splits: dict[str, str] = {}
    for label in sorted(set(labels.values())):
        ids = sorted(i for i, l in labels.items() if l == label)
        order = rng.permutation(len(ids))
        n_train = int(round(fractions[0] * len(ids)))
        n_val = int(round(fractions[1] * len(ids)))
        for rank, idx in enumerate(order):
            splits[ids[idx]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return splits


def write_splits(path: Path, splits: dict[str, str]) -> None:
    """Write a split file atomically."""
    path = Path(path)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["image_id", "split"])
    for image_id in sorted(splits):
        writer.writerow([image_id, splits[image_id]])
    atomic_write(path, buffer.getvalue())


def _index_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Map file stem → path under folder (recursive), refusing ambiguous duplicates."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in found:
                raise DatasetError(f"image id {path.stem!r} appears twice: {found[path.stem]} and {path}")
            found[path.stem] = path
    return found


class RSNADataset(RadiographDataset):
    """RSNA Pneumonia Detection Challenge, Kaggle stage-2 layout.

    Parameters
    ----------
    classes : keep only images whose detailed class (``stage_2_detailed_class_info.csv``) is one of
        these. ``"paper"`` (default): the paper's ``("Normal", "Lung Opacity")`` — the "No Lung Opacity /
        Not Normal" patients are neither positives nor clean negatives — when the class file exists,
        every image otherwise (said in :attr:`selection`). ``None`` or ``"all"`` keeps every image.
    """

    kind = "rsna"
    LABELS = "stage_2_train_labels.csv"
    CLASS_INFO = "stage_2_detailed_class_info.csv"
    IMAGES = "stage_2_train_images"
    COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
    CLASSES = ("Normal", "Lung Opacity", "No Lung Opacity / Not Normal")
    PAPER_CLASSES = ("Normal", "Lung Opacity")

    def __init__(self, root, *, classes: tuple[str, ...] | str | None = "paper", **kwargs):
        self._classes_asked = classes
        if classes == "paper":
            has_info = (Path(root) / self.CLASS_INFO).is_file()
            self.classes = self.PAPER_CLASSES if has_info else None
        elif classes in (None, "all"):
            self.classes = None
        else:
            classes = tuple(classes)
            unknown = [c for c in classes if c not in self.CLASSES]
            if unknown or not classes:
                raise DatasetError(f"unknown RSNA class(es) {unknown or 'none given'}; the classes of "
                                   f"{self.CLASS_INFO} are {list(self.CLASSES)}", path=Path(root))
            self.classes = classes
        super().__init__(root, **kwargs)

    def _excluded(self, record: Record) -> str | None:
        if self.classes and record.category not in self.classes:
            return f"class not in {list(self.classes)}"
        return None

    @property
    def selection(self) -> dict:
        if self.classes is not None:
            note = "the paper's choice" if self.classes == self.PAPER_CLASSES else "chosen"
        elif self._classes_asked == "paper":
            note = f"all: no {self.CLASS_INFO} to filter by (the paper kept Normal and Lung Opacity only)"
        else:
            note = "all (the paper kept Normal and Lung Opacity only)"
        return {"classes": list(self.classes) if self.classes else None, "classes_note": note}

    def _scan(self) -> list[Record]:
        labels_path = self.root / self.LABELS
        rows = read_csv(labels_path, self.COLUMNS, what="RSNA label file")
        boxes: dict[str, list[Box]] = defaultdict(list)
        targets: dict[str, int] = {}
        for line, row in enumerate(rows, start=2):
            pid = row["patientId"]
            if not pid:
                raise DatasetError(f"line {line}: empty patientId", path=labels_path)
            target = row["Target"]
            if target not in ("0", "1"):
                raise DatasetError(f"line {line}: Target must be 0 or 1, got {target!r}", path=labels_path)
            target = int(target)
            if pid in targets and targets[pid] != target:
                raise DatasetError(f"line {line}: patient {pid!r} has rows with Target 0 and Target 1",
                                   path=labels_path)
            targets[pid] = target
            if target == 0:
                if any(row[c] for c in ("x", "y", "width", "height")):
                    raise DatasetError(f"line {line}: a Target 0 row must have empty box columns",
                                       path=labels_path)
                continue
            self._add_box(boxes, pid, row, line, labels_path)
        categories: dict[str, str] = {}
        info_path = self.root / self.CLASS_INFO
        if info_path.is_file():
            for line, row in enumerate(read_csv(info_path, ("patientId", "class"),
                                                what="RSNA class info file"), start=2):
                categories.setdefault(row["patientId"], row["class"])
        elif self.classes:
            raise DatasetError(f"class filter {self.classes} needs {self.CLASS_INFO}", path=info_path)
        image_dir = self.root / self.IMAGES
        if not image_dir.is_dir():
            raise DatasetError(f"image folder {self.IMAGES}/ not found", path=self.root)
        files = _index_files(image_dir, (".dcm",))
        return [Record(pid, files[pid], targets[pid], tuple(boxes.get(pid, ())), category=categories.get(pid, ""))
                for pid in self._join(targets, files)]


class SIIMDataset(RadiographDataset):
    """SIIM-ACR Pneumothorax Segmentation layout (DICOMs nested as study/series/ImageId.dcm)."""

    kind = "siim"
    LABELS = "train-rle.csv"
    COLUMNS = ("ImageId", "EncodedPixels")
    IMAGE_DIRS = ("dicom-images-train", "stage_2_images", "dicom-images-test")

    def _scan(self) -> list[Record]:
        labels_path = self.root / self.LABELS
        rows = read_csv(labels_path, self.COLUMNS, what="SIIM RLE file")
        rles: dict[str, list[str]] = defaultdict(list)
        for line, row in enumerate(rows, start=2):
            image_id, rle = row["ImageId"], row["EncodedPixels"]
            if not image_id:
                raise DatasetError(f"line {line}: empty ImageId", path=labels_path)
            if rle == "":
                raise DatasetError(f"line {line}: empty EncodedPixels (use -1 for no pneumothorax)",
                                   path=labels_path)
            tokens = rle.split()
            if rle != "-1" and (len(tokens) % 2 or not all(t.isascii() and t.isdigit() for t in tokens)):
                raise DatasetError(f"line {line}: malformed RLE for {image_id!r} (expected non-negative "
                                   f"integer offset/length pairs or -1)", path=labels_path)
            self._add_unique(rles, image_id, rle, "duplicate RLE rows")
        for image_id, items in rles.items():
            if "-1" in items and len(items) > 1:
                raise DatasetError(f"image {image_id!r} has both -1 (no pneumothorax) and a mask",
                                   path=labels_path)
        image_dirs = [self.root / d for d in self.IMAGE_DIRS if (self.root / d).is_dir()]
        if not image_dirs:
            raise DatasetError(f"no DICOM folder found (expected one of {self.IMAGE_DIRS})", path=self.root)
        files: dict[str, Path] = {}
        for folder in image_dirs:
            for stem, path in _index_files(folder, (".dcm",)).items():
                if stem in files:
                    raise DatasetError(f"image id {stem!r} appears twice: {files[stem]} and {path}")
                files[stem] = path
        records = []
        for image_id in self._join(rles, files):
            masks = tuple(r for r in rles[image_id] if r != "-1")
            records.append(Record(image_id, files[image_id], int(bool(masks)), rles=masks))
        return records


class FolderDataset(RadiographDataset):
    """Images in ``images/`` (PNG/JPEG/TIFF/DICOM) with ``labels.csv`` and boxes or masks.

    ``labels.csv``: ``image_id,label`` (0/1). Ground truth from ``boxes.csv``
    (``image_id,x,y,width,height`` in native pixels) and/or ``masks/<image_id>.png``. Without
    ``labels.csv``, an image is positive when it has a box or a non-empty mask file.
    """

    kind = "folder"

    def _scan(self) -> list[Record]:
        image_dir = self.root / "images"
        if not image_dir.is_dir():
            raise DatasetError("folder dataset needs an images/ folder", path=self.root)
        files = _index_files(image_dir, IMAGE_SUFFIXES + (".dcm",))
        boxes: dict[str, list[Box]] = defaultdict(list)
        boxes_path = self.root / "boxes.csv"
        if boxes_path.is_file():
            for line, row in enumerate(read_csv(boxes_path, ("image_id", "x", "y", "width", "height"),
                                                what="box file"), start=2):
                self._add_box(boxes, row["image_id"], row, line, boxes_path)
        mask_dir = self.root / "masks"
        masks = _index_files(mask_dir, IMAGE_SUFFIXES) if mask_dir.is_dir() else {}
        labels_path = self.root / "labels.csv"
        labels: dict[str, int] = {}
        if labels_path.is_file():
            for line, row in enumerate(read_csv(labels_path, ("image_id", "label"), what="label file"),
                                       start=2):
                if row["label"] not in ("0", "1"):
                    raise DatasetError(f"line {line}: label must be 0 or 1, got {row['label']!r}",
                                       path=labels_path)
                if row["image_id"] in labels:
                    raise DatasetError(f"line {line}: duplicate image id {row['image_id']!r}",
                                       path=labels_path)
                labels[row["image_id"]] = int(row["label"])
        else:
            if not boxes and not masks:
                raise DatasetError("folder dataset needs labels.csv, boxes.csv or masks/", path=self.root)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FilmWarning)  # a mask's scale does not matter here
                labels = {i: int(i in boxes or (i in masks and load_radiograph(masks[i]).max() > 0))
                          for i in files}
        records = [Record(image_id, files[image_id], labels[image_id], tuple(boxes.get(image_id, ())),
                          mask_path=masks.get(image_id)) for image_id in self._join(labels, files)]
        for image_id in sorted((boxes.keys() | masks.keys()) - files.keys()):
            self.skipped.add("annotations without an image file", image_id)
        return records
