"""VinDr-CXR / VinBigData: three readers per training film, combined by a reader rule (see
:mod:`trust_core.data.findings` for the layout)."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from ..errors import DatasetError
from .records import Box, Record, index_files, parse_number, read_csv
from .findings import DEFAULT_READERS, READER_RULES, FindingDataset, check_box


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
    SELECTION_ARGS = ("finding", "negatives", "readers")
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
            check_box(image_id, box, line, path)
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
        files = index_files(folder, (".dicom", ".dcm"))
        test_path = self.root / self.TEST_LABELS
        if test_path.is_file() and (self.root / "test").is_dir():  # the official, consensus-labelled test set
            test_boxes, test_said = self._read(test_path, readers=False)
            test_files = index_files(self.root / "test", (".dicom", ".dcm"))
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
        from .records import make_splits

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
