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
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ImageError
from .datasets import Box, RadiographDataset, Record, _index_files, parse_number, read_csv

NEGATIVE_RULES = ("no-finding", "absent")
READER_RULES = ("majority", "union")  # or "reader:R8"
DEFAULT_READERS = "majority"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


class FindingDataset(RadiographDataset):
    """A dataset with several findings, of which one (``finding``) is evaluated at a time."""

    FINDINGS: tuple[str, ...] = ()
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


def _check_box(image_id: str, box: Box, line: int, path: Path) -> None:
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
            _check_box(image_id, box, line, box_path)
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
            for stem, path in _index_files(folder, (".png",)).items():
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
        from .datasets import make_splits

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


class VinDrDataset(FindingDataset):
    """VinDr-CXR / VinBigData annotations (see the module docstring).

    Training films were read by three radiologists each. ``readers``: ``majority`` (default; a film is
    positive when at least two of its readers mark the finding, and its ground truth is where at least two
    readers' boxes overlap — films whose readers' boxes never overlap are a counted skip), ``union`` (any
    reader; all boxes) or ``reader:R8`` (one radiologist's reading). PhysioNet's release also has the
    official test set (``annotations/annotations_test.csv`` + ``test/``), labelled by a consensus of five
    radiologists — what the VinDr-CXR paper evaluates against: when present, its films are the ``test``
    split with their consensus boxes, and the reader rule applies to the training films only.
    """

    kind = "vindr"
    LABELS = ("train.csv", "annotations/annotations_train.csv")
    TEST_LABELS = "annotations/annotations_test.csv"
    COLUMNS = ("image_id", "class_name", "rad_id", "x_min", "y_min", "x_max", "y_max")
    # PhysioNet's 22 local labels (Kaggle's VinBigData kept the first 14 of them, in the order below)
    FINDINGS = ("Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
                "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
                "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "Clavicle fracture", "Edema",
                "Emphysema", "Enlarged PA", "Lung cavity", "Lung cyst", "Mediastinal shift", "Rib fracture")
    NO_FINDING = "No finding"
    NEGATIVES_NOTE = {"no-finding": "films every reader marked 'No finding'",
                      "absent": "every film on which no reader marked the finding"}

    def __init__(self, root, *, readers: str = DEFAULT_READERS, **kwargs):
        if readers not in READER_RULES and not re.fullmatch(r"reader:R\d+", readers or ""):
            raise DatasetError(f"unknown reader rule {readers!r}; choose {list(READER_RULES)} or reader:R<n> "
                               f"(e.g. reader:R8)")
        self.readers = readers
        super().__init__(root, **kwargs)

    @property
    def selection(self) -> dict:
        return {**super().selection, "readers": self.readers, "official_test": bool(self._official)}

    def _labels_path(self, record: Record) -> Path:
        return self._label_file.get(record.image_id, self._found_labels)

    @classmethod
    def _localized(cls, root: Path) -> set[str]:
        path = next((root / n for n in cls.LABELS if (root / n).is_file()), None)
        return {row["class_name"] for row in read_csv(path, ("class_name",), what="VinDr label file")} if path else set()

    def _read(self, path: Path, *, readers: bool) -> tuple[dict, dict]:
        """(image → reader → boxes of the finding, image → reader → class names) of one label file;
        a consensus file (no rad_id) is one reader, 'consensus'."""
        columns = self.COLUMNS if readers else tuple(c for c in self.COLUMNS if c != "rad_id")
        rows = read_csv(path, columns, what="VinDr label file")
        boxes: dict[str, dict[str, list[Box]]] = defaultdict(lambda: defaultdict(list))
        said: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for line, row in enumerate(rows, start=2):
            image_id, name = row["image_id"], row["class_name"]
            reader = row["rad_id"] if readers else (row.get("rad_id") or "consensus")
            if not image_id or not reader:
                raise DatasetError(f"line {line}: empty image_id or rad_id", path=path)
            if name != self.NO_FINDING and name not in self.FINDINGS:
                raise DatasetError(f"line {line}: unknown class_name {name!r}; VinDr's are "
                                   f"{[self.NO_FINDING, *self.FINDINGS]}", path=path)
            said[image_id][reader].add(name)
            if name == self.NO_FINDING:
                if any(row[c] for c in ("x_min", "y_min", "x_max", "y_max")):
                    raise DatasetError(f"line {line}: a 'No finding' row must have empty box columns", path=path)
                continue
            x0, y0, x1, y1 = (parse_number(row[c], line, c, path) for c in ("x_min", "y_min", "x_max", "y_max"))
            box = Box(x0, y0, x1 - x0, y1 - y0)
            _check_box(image_id, box, line, path)
            if name == self.finding:
                boxes[image_id][reader].append(box)
        return boxes, said

    def _scan(self) -> list[Record]:
        path = next((self.root / n for n in self.LABELS if (self.root / n).is_file()), None)
        if path is None:
            raise DatasetError(f"the VinDr label file is missing: one of {list(self.LABELS)}", path=self.root)
        self._found_labels, self._label_file, self._official = path, {}, {}
        readers, said = self._read(path, readers=True)
        folder = next((self.root / n for n in ("train", "train_dicom", "dicom") if (self.root / n).is_dir()), None)
        if folder is None:
            raise DatasetError("no DICOM folder found (expected train/)", path=self.root)
        files = _index_files(folder, (".dicom", ".dcm"))
        test_path = self.root / self.TEST_LABELS
        if test_path.is_file() and (self.root / "test").is_dir():  # the official, consensus-labelled test set
            test_boxes, test_said = self._read(test_path, readers=False)
            test_files = _index_files(self.root / "test", (".dicom", ".dcm"))
            for image_id in test_said:
                if image_id in said:
                    raise DatasetError(f"image {image_id!r} is in both the training and the test labels", path=test_path)
                self._official[image_id] = "test"
                self._label_file[image_id] = test_path
            readers.update(test_boxes)
            said.update(test_said)
            files.update(test_files)
        for image_id in sorted(said.keys() - files.keys()):
            self.skipped.add("label rows without an image file", image_id)
        for image_id in sorted(files.keys() - said.keys()):
            self.skipped.add("image files without labels", image_id)
        present = set(files) & set(said)
        rule = self.readers
        chosen = rule.split(":", 1)[1] if rule.startswith("reader:") else None
        positive, kept, left_out = set(), {}, {}
        self._strata = {}  # rule-independent labels (any reader marked it): splits do not depend on the rule
        for image_id in present:
            marked = {r: b for r, b in readers.get(image_id, {}).items() if b}
            self._strata[image_id] = int(bool(marked))
            if image_id in self._official:  # consensus boxes
                need = 1
            elif chosen is not None:
                if chosen not in said[image_id]:
                    left_out[image_id] = f"not read by {chosen}"
                    continue
                marked, need = {r: b for r, b in marked.items() if r == chosen}, 1
            else:
                need = 2 if rule == "majority" else 1
            if len(marked) >= need:
                if need == 2 and not _overlap(list(marked.values())):
                    left_out[image_id] = "majority without overlapping boxes (no pixel two readers agree on)"
                    continue
                positive.add(image_id)
                kept[image_id] = (tuple(tuple(b) for b in marked.values()), need)
        if chosen is not None and len(left_out) == len(present):
            raise DatasetError(f"no film was read by {chosen}; the readers are "
                               f"{sorted({r for i in present for r in said[i]})[:20]}", path=path)
        if self.negatives == "no-finding":
            negative = {i for i in present if all(c == {self.NO_FINDING} for c in said[i].values())}
        else:
            negative = {i for i in present if not any(self.finding in c for c in said[i].values())}
        labels = self._labelled(positive, negative, present, left_out)
        records = []
        for image_id in sorted(labels):
            sets, need = kept.get(image_id, ((), 0))
            readings = tuple(tuple(readers.get(image_id, {}).get(r, ())) for r in sorted(said.get(image_id, {})))
            records.append(Record(image_id, files[image_id], labels[image_id], reader_boxes=sets,
                                  min_readers=need if labels[image_id] else 0, readings=readings,
                                  category=self.finding if labels[image_id] else ""))
        return records

    def _load_or_make_splits(self, records, seed, fractions) -> dict[str, str]:
        """Stratified by 'any reader marked the finding' (the same split under every reader rule); the
        official test films are 'test', the training films share train and val."""
        if self.split_file.is_file():
            return super()._load_or_make_splits(records, seed, fractions)
        from .datasets import make_splits

        training = {r.image_id: self._strata.get(r.image_id, r.label) for r in records if r.image_id not in self._official}
        if self._official:
            share = fractions[0] + fractions[1]
            splits = make_splits(training, seed=seed, fractions=(fractions[0] / share, fractions[1] / share, 0.0))
            splits.update({i: "test" for i in self._official if any(r.image_id == i for r in records)})
        else:
            splits = make_splits(training, seed=seed, fractions=fractions)
        return self._save_splits(splits)


def _overlap(readers: list[list[Box]]) -> bool:
    """Whether boxes of two different readers intersect (a pixel at least two readers agree on)."""
    for i in range(len(readers)):
        for j in range(i + 1, len(readers)):
            for a in readers[i]:
                for b in readers[j]:
                    if min(a.x + a.width, b.x + b.width) > max(a.x, b.x) and \
                            min(a.y + a.height, b.y + b.height) > max(a.y, b.y):
                        return True
    return False


class CheXlocalizeDataset(FindingDataset):
    """CheXlocalize's radiologist segmentations over CheXpert films (see the module docstring)."""

    kind = "chexlocalize"
    LABELS = ("gt_segmentations_val.json", "gt_segmentations_test.json")
    FINDINGS = ("Airspace Opacity", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                "Enlarged Cardiomediastinum", "Lung Lesion", "Pleural Effusion", "Pneumothorax", "Support Devices")
    NEGATIVES_NOTE = {"no-finding": "films CheXpert labels 'No Finding' (valid.csv / test_labels.csv); without "
                                    "a label file, films with nothing segmented",
                      "absent": "every film whose segmentation of the finding is empty (and, with a label "
                                "file, not labelled positive for it)"}
    # The Stanford AIMI download: <root>/CheXlocalize/gt_segmentations_*.json beside <root>/CheXpert/{val,test}/;
    # the repository's README: CheXpert-v1.0/valid/. (Never CheXpert-v1.0-small: downscaled films, other RLE sizes.)
    LABEL_DIRS = ("", "CheXlocalize")
    IMAGE_ROOTS = ("", "CheXpert", "CheXpert-v1.0", "../CheXpert", "../CheXpert-v1.0")
    LABEL_CSVS = ("valid.csv", "val_labels.csv", "test_labels.csv", "test.csv")
    CHEXPERT_NAME = {"Airspace Opacity": "Lung Opacity"}  # CheXpert's label for CheXlocalize's name
    ALIASES = {"Lung Opacity": ("Airspace Opacity", "CheXlocalize calls CheXpert's 'Lung Opacity' 'Airspace Opacity'")}
    _ID = re.compile(r"^(patient\d+)_(study\d+)_(view\d+_\w+)$")

    @classmethod
    def _json_files(cls, root: Path) -> list[tuple[Path, str]]:
        return [(root / d / n, "val" if "val" in n else "test") for d in cls.LABEL_DIRS for n in cls.LABELS
                if (root / d / n).is_file()]

    def _chexpert_labels(self) -> dict[str, dict[str, str]]:
        """CheXpert's label rows by CheXlocalize id (``Path`` … ``patient1/study1/view1_frontal.jpg``)."""
        labels = {}
        for base in self.IMAGE_ROOTS:
            for name in self.LABEL_CSVS:
                path = (self.root / base / name).resolve()
                if not path.is_file():
                    continue
                for row in read_csv(path, ("Path", "No Finding"), what="CheXpert label file"):
                    parts = row["Path"].replace("\\", "/").split("/")
                    if len(parts) >= 3 and parts[-1].endswith(".jpg"):
                        labels[f"{parts[-3]}_{parts[-2]}_{parts[-1][:-4]}"] = row
                self._label_csvs.append(path)
        return labels

    def _labels_path(self, record: Record) -> Path:
        return self._json_of.get(record.image_id, self.root)

    @classmethod
    def _localized(cls, root: Path) -> set[str]:
        from pycocotools import mask as coco_mask

        found = set()
        for path, _split in cls._json_files(root):
            if path.is_file():
                for per_finding in json.loads(path.read_text(encoding="utf-8")).values():
                    found |= {f for f, rle in per_finding.items() if f not in found and coco_mask.area(
                        {"size": rle["size"], "counts": rle["counts"].encode()}) > 0}
        return found

    def _scan(self) -> list[Record]:
        found = self._json_files(self.root)
        if not found:
            raise DatasetError(f"no CheXlocalize segmentation file: expected {list(self.LABELS)} here or in "
                               f"CheXlocalize/", path=self.root)
        self._label_csvs: list[Path] = []
        chexpert = self._chexpert_labels()
        column = self.CHEXPERT_NAME.get(self.finding, self.finding)
        self._json_of: dict[str, Path] = {}
        self._official: dict[str, str] = {}
        records = []
        present: set[str] = set()
        positive, negative, coco = set(), set(), {}
        paths = {}
        for path, split in found:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DatasetError(f"not valid JSON ({exc})", path=path) from None
            if not isinstance(data, dict):
                raise DatasetError("expected {image_id: {pathology: {size, counts}}}", path=path)
            for image_id, per_finding in data.items():
                if not isinstance(per_finding, dict) or self.finding not in per_finding:
                    raise DatasetError(f"image {image_id!r} has no {self.finding!r} entry; each image maps every "
                                       f"pathology to an RLE {{size, counts}}", path=path)
                image_path = self._image_path(image_id, split)
                if image_path is None:
                    self.skipped.add("segmentations without an image file", image_id)
                    continue
                rles = {}
                for name, rle in per_finding.items():
                    if name not in self.FINDINGS:
                        continue
                    if not (isinstance(rle, dict) and isinstance(rle.get("size"), list) and len(rle["size"]) == 2
                            and isinstance(rle.get("counts"), str)):
                        raise DatasetError(f"image {image_id!r}, {name}: an RLE is {{size: [h, w], counts: str}}",
                                           path=path)
                    rles[name] = (int(rle["size"][0]), int(rle["size"][1]), rle["counts"])
                from pycocotools import mask as coco_mask

                areas = {n: float(coco_mask.area({"size": [h, w], "counts": c.encode()})) for n, (h, w, c) in rles.items()}
                self._json_of[image_id] = path
                self._official[image_id] = split
                paths[image_id] = image_path
                present.add(image_id)
                coco[image_id] = rles[self.finding]
                label = chexpert.get(image_id)
                if areas.get(self.finding, 0) > 0:
                    positive.add(image_id)
                elif self.negatives == "absent":
                    if not (label and label.get(column, "").strip() in ("1", "1.0")):
                        negative.add(image_id)
                elif label is not None:
                    if label["No Finding"].strip() in ("1", "1.0"):
                        negative.add(image_id)
                elif not chexpert and not any(a > 0 for a in areas.values()):
                    negative.add(image_id)
        labels = self._labelled(positive, negative, present)
        for image_id in sorted(labels):
            records.append(Record(image_id, paths[image_id], labels[image_id],
                                  coco=(coco[image_id],) if labels[image_id] else (),
                                  category=self.finding if labels[image_id] else ""))
        return records

    def _load_or_make_splits(self, records, seed, fractions) -> dict[str, str]:
        """The official sets: validation → 'val', test → 'test' (CheXlocalize has no training films)."""
        if self.split_file.is_file():
            return super()._load_or_make_splits(records, seed, fractions)
        splits = {r.image_id: self._official[r.image_id] for r in records}
        return self._save_splits(splits)

    def _image_path(self, image_id: str, split: str) -> Path | None:
        match = self._ID.match(image_id)
        if not match:
            return None
        patient, study, view = match.groups()
        for labels_dir in self.LABEL_DIRS:
            for base in self.IMAGE_ROOTS:
                for folder in (("valid", "val") if split == "val" else ("test",)):
                    candidate = self.root / labels_dir / base / folder / patient / study / f"{view}.jpg"
                    if candidate.is_file():
                        return candidate.resolve()
        return None

    @property
    def selection(self) -> dict:
        used = [p.name for p in getattr(self, "_label_csvs", [])]
        return {**super().selection, "label_files": used or None}


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
