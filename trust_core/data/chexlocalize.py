"""CheXlocalize: radiologists' segmentations (COCO RLE) over CheXpert films, with CheXpert's official
validation and test sets (see :mod:`trust_core.data.findings` for the layout)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import DatasetError
from .records import Record, read_csv
from .findings import FindingDataset


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
