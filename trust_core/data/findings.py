"""Multi-finding localization datasets, read in their official layouts as downloaded.

* **NIH ChestX-ray14** (``nih``): ``BBox_List_2017.csv`` (984 boxes on 880 images, 8 findings, in the
  1024×1024 pixels of the PNGs), ``Data_Entry_2017.csv`` (or ``Data_Entry_2017_v2020.csv``; image labels,
  ``No Finding`` for clean films), PNGs under ``images/`` or ``images_*/images/`` (Kaggle and Box).
* **VinDr-CXR / VinBigData** (``vindr``): ``train.csv`` (Kaggle: ``image_id, class_name, class_id, rad_id,
  x_min, y_min, x_max, y_max``) or PhysioNet's ``annotations/annotations_train.csv``, DICOMs of native size
  under ``train/`` (``.dicom`` or ``.dcm``). Boxes are in each DICOM's native pixels. Three radiologists
  read every training image; ``readers`` combines them (see :data:`READER_RULES`).
* **CheXlocalize** (``chexlocalize``): ``gt_segmentations_val.json`` / ``gt_segmentations_test.json``
  (COCO RLE per image and pathology, decoded with pycocotools), CheXpert JPEGs by path
  (``valid/`` or ``test/`` + ``patientX/studyY/viewZ_frontal.jpg``, also under ``CheXpert-v1.0/``).

Each needs a ``finding``. Positives are the images with that finding localized; negatives follow the
``negatives`` rule: ``no-finding`` (default, the dataset's own: NIH ``No Finding``, VinDr every reader
``No finding``, CheXlocalize no pathology segmented at all) or ``absent`` (every image without that
finding). Other images are counted skips. Splits are seeded and stratified per finding
(``splits_<finding>.csv``); CheXlocalize keeps its official validation and test sets.
"""
from __future__ import annotations

import abc
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ImageError
from .datasets import RadiographDataset
from .records import Box, Record, index_files, parse_number, read_csv

NEGATIVE_RULES = ("no-finding", "absent")
READER_RULES = ("majority", "union")  # or "reader:R8"
DEFAULT_READERS = "majority"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


class FindingDataset(RadiographDataset):
    """A dataset with several findings, of which one (``finding``) is evaluated at a time."""

    FINDINGS: tuple[str, ...] = ()
    SELECTION_ARGS = ("finding", "negatives")
    NEGATIVES_NOTE = {"no-finding": "", "absent": "every image without the finding"}
    # names a user brings from the dataset's other files or from a model's outputs → (the name here, why)
    ALIASES: dict[str, tuple[str, str]] = {}

    def __init__(self, root, *, finding: str | None = None, negatives: str = "no-finding", **kwargs):
        if finding is None:
            raise DatasetError(f"a {self.kind} dataset holds several findings: choose one with --finding "
                               f"(one of {list(self.FINDINGS)})", path=Path(root))
        if finding not in self.FINDINGS:
            close = [f for f in self.FINDINGS if f.lower() == str(finding).lower()]
            alias = next((v for k, v in self.ALIASES.items() if k.lower() == str(finding).lower()), None)
            hint = (f" (did you mean {close[0]!r}?)" if close else
                    f" (did you mean {alias[0]!r}? {alias[1]})" if alias else "")
            raise DatasetError(f"unknown finding {finding!r}{hint}; the {self.kind} findings are "
                               f"{list(self.FINDINGS)}", path=Path(root))
        if negatives not in NEGATIVE_RULES:
            raise DatasetError(f"unknown negatives rule {negatives!r}; choose one of {NEGATIVE_RULES}")
        self.finding, self.negatives = finding, negatives
        super().__init__(root, **kwargs)

    def _split_name(self) -> str:
        return f"splits_{_slug(self.finding)}.csv"

    @classmethod
    def available(cls, root: str | Path) -> list[str]:
        """The findings this dataset folder localizes at least once (registry order); [] when unreadable."""
        try:
            found = cls._localized(Path(root))
        except (OSError, ValueError, KeyError, DatasetError):
            return []
        return [f for f in cls.FINDINGS if f in found]

    @classmethod
    @abc.abstractmethod
    def _localized(cls, root: Path) -> set[str]:
        """The findings the label files of ``root`` localize at least once."""

    @property
    def selection(self) -> dict:
        return {"finding": self.finding, "negatives": self.negatives,
                "negatives_note": self.NEGATIVES_NOTE[self.negatives]}

    def _labelled(self, positive: set[str], negative: set[str], present: set[str],
                  left_out: dict[str, str] | None = None) -> dict[str, int]:
        """Labels of every present film (1: the finding, 0: the rest). Splits cover them all, so that a
        film's split never depends on the negatives rule; :meth:`_excluded` then leaves out the films that
        are neither positive nor a negative by the rule (counted skips)."""
        self._negative = negative - positive
        self._left_out = dict(left_out or {})
        return {i: int(i in positive) for i in present}

    def _excluded(self, record: Record) -> str | None:
        if record.image_id in self._left_out:
            return self._left_out[record.image_id]
        if record.label == 0 and record.image_id not in self._negative:
            return f"neither {self.finding} nor a negative by the {self.negatives!r} rule"
        return None


def check_box(image_id: str, box: Box, line: int, path: Path) -> None:
    """Refuse a box of no area or one that starts outside the image, naming the label file's line."""
    if not (box.width > 0 and box.height > 0):
        raise DatasetError(f"line {line}: box of {image_id!r} has a zero or negative size "
                           f"({box.width:g} x {box.height:g})", path=path)
    if box.x < 0 or box.y < 0:
        raise DatasetError(f"line {line}: box of {image_id!r} starts outside the image ({box.x:g}, {box.y:g})",
                           path=path)


class NIHDataset(FindingDataset):
    """NIH ChestX-ray14 with its bounding-box subset (see the module docstring)."""

    kind = "nih"
    LABELS = "BBox_List_2017.csv"
    ENTRIES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
    FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltrate", "Mass", "Nodule", "Pneumonia",
                "Pneumothorax")
    # The box file says "Infiltrate" where the label file says "Infiltration".
    ENTRY_NAME = {"Infiltrate": "Infiltration"}
    ALIASES = {"Infiltration": ("Infiltrate", "NIH's box list calls Data_Entry's 'Infiltration' 'Infiltrate'")}
    NATIVE = (1024, 1024)  # the PNGs (and the boxes' pixels)
    NEGATIVES_NOTE = {"no-finding": "Data_Entry 'No Finding' films",
                      "absent": "every film whose Data_Entry labels lack the finding (and without its box)"}

    @classmethod
    def _localized(cls, root: Path) -> set[str]:
        lines = (root / cls.LABELS).read_text(encoding="utf-8-sig").splitlines()[1:]
        return {line.split(",")[1].strip() for line in lines if line.count(",") >= 5}

    def _scan(self) -> list[Record]:
        box_path = self.root / self.LABELS
        if not box_path.is_file():
            raise DatasetError(f"{self.LABELS} not found (the NIH box list)", path=self.root)
        rows = _positional_rows(box_path, 6, "NIH box list",
                                expected="Image Index,Finding Label,Bbox [x,y,w,h] (x, y, w, h in pixels)")
        boxes: dict[str, list[Box]] = defaultdict(list)
        for line, row in rows:
            image_id, label = row[0], row[1]
            if not image_id:
                raise DatasetError(f"line {line}: empty Image Index", path=box_path)
            if label not in self.FINDINGS:
                raise DatasetError(f"line {line}: unknown finding {label!r}; the box list's findings are "
                                   f"{list(self.FINDINGS)}", path=box_path)
            box = Box(*(parse_number(row[k], line, name, box_path) for k, name in ((2, "x"), (3, "y"), (4, "w"), (5, "h"))))
            check_box(image_id, box, line, box_path)
            if box.x + box.width > self.NATIVE[1] + 1 or box.y + box.height > self.NATIVE[0] + 1:
                raise DatasetError(f"line {line}: box of {image_id!r} ends outside the {self.NATIVE[1]}×"
                                   f"{self.NATIVE[0]} film ({box})", path=box_path)
            if label == self.finding:
                self._add_unique(boxes, image_id, box, "duplicate box rows")
        entries_path = next((self.root / n for n in self.ENTRIES if (self.root / n).is_file()), None)
        if entries_path is None:
            raise DatasetError(f"the NIH label file is missing: one of {list(self.ENTRIES)}", path=self.root)
        entry_labels: dict[str, set[str]] = {}
        self._patient: dict[str, str] = {}
        for line, row in enumerate(read_csv(entries_path, ("Image Index", "Finding Labels"), what="NIH label file"),
                                   start=2):
            labels = set(row["Finding Labels"].split("|"))
            if row["Image Index"] in entry_labels and entry_labels[row["Image Index"]] != labels:
                raise DatasetError(f"line {line}: image {row['Image Index']!r} has two different label rows",
                                   path=entries_path)
            entry_labels[row["Image Index"]] = labels
            if row.get("Patient ID"):
                self._patient[row["Image Index"]] = row["Patient ID"]
        files = {}
        folders = [self.root / "images"] + sorted(p / "images" for p in self.root.glob("images_*"))
        for folder in [f for f in folders if f.is_dir()]:
            for stem, path in index_files(folder, (".png",)).items():
                if path.name in files:
                    raise DatasetError(f"image {path.name!r} appears twice: {files[path.name]} and {path}")
                files[path.name] = path
        if not files:
            raise DatasetError("no PNG found under images/ or images_*/images/", path=self.root)
        for image_id in sorted(boxes.keys() - files.keys()):
            self.skipped.add("box rows without an image file", image_id)
        name = self.ENTRY_NAME.get(self.finding, self.finding)
        present = set(files)
        positive = set(boxes) & present
        if self.negatives == "no-finding":
            negative = {i for i in present if entry_labels.get(i) == {"No Finding"}}
        else:
            negative = {i for i in present if i in entry_labels and name not in entry_labels[i]}
        unlabelled = sorted(present - entry_labels.keys() - positive)
        for image_id in unlabelled:
            self.skipped.add("image files without a Data_Entry row", image_id)
        labels = self._labelled(positive, negative, present - set(unlabelled))
        return [Record(i, files[i], labels[i], tuple(boxes.get(i, ())), category=self.finding if labels[i] else "")
                for i in sorted(labels)]

    def _load_or_make_splits(self, records, seed, fractions) -> dict[str, str]:
        """Split by patient (a patient's follow-up films never straddle splits), stratified per finding."""
        if self.split_file.is_file():
            return super()._load_or_make_splits(records, seed, fractions)
        from .records import make_splits

        patient_of = {r.image_id: self._patient.get(r.image_id) or r.image_id.split("_")[0] for r in records}
        patients: dict[str, int] = {}
        for r in records:
            patients[patient_of[r.image_id]] = max(patients.get(patient_of[r.image_id], 0), r.label)
        by_patient = make_splits(patients, seed=seed, fractions=fractions)
        splits = {r.image_id: by_patient[patient_of[r.image_id]] for r in records}
        return self._save_splits(splits)

    def native_image(self, image_id: str) -> np.ndarray:
        path = self.record(image_id).path
        from PIL import Image

        try:
            with Image.open(path) as img:
                mode, size = img.mode, img.size
        except Exception as exc:
            raise ImageError(f"not a readable PNG ({type(exc).__name__}: {str(exc)[:200]})", path=path) from None
        if mode != "L":
            kind = {"RGB": "RGB", "RGBA": "RGBA", "I;16": "16-bit", "I": "32-bit", "LA": "grey+alpha"}.get(mode, mode)
            raise ImageError(f"an NIH film must be an 8-bit grayscale PNG; this one is {kind} (mode {mode}). "
                             f"After checking it is a chest film, convert a copy (never the original), e.g. "
                             f"PIL.Image.open(p).convert('L').save(copy), and use the copy", path=path)
        if (size[1], size[0]) != self.NATIVE:
            raise ImageError(f"an NIH film is {self.NATIVE[1]}×{self.NATIVE[0]} (the boxes are in its pixels); "
                             f"this one is {size[0]}×{size[1]}", path=path)
        return super().native_image(image_id)


def _positional_rows(path: Path, width: int, what: str, *, expected: str) -> list[tuple[int, list[str]]]:
    """Rows of a CSV read by position (NIH's box list header 'Bbox [x,y,w,h]' spans four columns)."""
    import csv
    import io

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{what} is not UTF-8 text", path=path) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or [h.strip() for h in header[:2]] != ["Image Index", "Finding Label"]:
        raise DatasetError(f"{what}: unexpected header {header[:6] if header else 'none'}; expected {expected}",
                           path=path)
    rows = []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = [c.strip() for c in row[:width]]
        if len(cells) < width or not all(cells):
            raise DatasetError(f"line {line}: expected {width} values ({expected}), got {row[:width]}", path=path)
        rows.append((line, cells))
    return rows
