"""What every dataset is made of: its records (an image and its annotation), the samples it yields, its
counted skips, label CSVs read with errors that name the line, and its seeded, stratified splits."""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..io import atomic_write

SPLITS = ("train", "val", "test")
UNREADABLE = "unreadable films"  # the skip reason of films left out by :meth:`~trust_core.data.screening.FilmScreening.screen`
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


def number_of(row: dict, key: str, line: int, path: Path) -> float:
    """The number in ``row``'s column ``key`` (see :func:`parse_number`)."""
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


def index_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Map file stem → path under folder (recursive), refusing ambiguous duplicates."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in found:
                raise DatasetError(f"image id {path.stem!r} appears twice: {found[path.stem]} and {path}")
            found[path.stem] = path
    return found
