"""The two Kaggle challenges of the paper, read as downloaded (see :mod:`trust_core.data.datasets`):
RSNA Pneumonia Detection (stage 2) and SIIM-ACR Pneumothorax."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..errors import DatasetError
from .datasets import RadiographDataset
from .records import Box, Record, index_files, read_csv


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
    SELECTION_ARGS = ("classes",)
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

    @classmethod
    def selection_kwargs(cls, recorded: dict) -> dict:
        if "classes" not in recorded:
            return {}
        return {"classes": tuple(recorded["classes"]) if recorded["classes"] else None}  # None: all were kept

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
        files = index_files(image_dir, (".dcm",))
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
            for stem, path in index_files(folder, (".dcm",)).items():
                if stem in files:
                    raise DatasetError(f"image id {stem!r} appears twice: {files[stem]} and {path}")
                files[stem] = path
        records = []
        for image_id in self._join(rles, files):
            masks = tuple(r for r in rles[image_id] if r != "-1")
            records.append(Record(image_id, files[image_id], int(bool(masks)), rles=masks))
        return records
