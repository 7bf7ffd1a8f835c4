"""A folder of images with a label file and boxes or masks: a researcher's own data (see
:mod:`trust_core.data.datasets`)."""
from __future__ import annotations

import warnings
from collections import defaultdict

from ..errors import DatasetError
from .datasets import RadiographDataset
from .images import IMAGE_SUFFIXES, FilmWarning, load_radiograph
from .records import Box, Record, index_files, read_csv


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
        files = index_files(image_dir, IMAGE_SUFFIXES + (".dcm",))
        boxes: dict[str, list[Box]] = defaultdict(list)
        boxes_path = self.root / "boxes.csv"
        if boxes_path.is_file():
            for line, row in enumerate(read_csv(boxes_path, ("image_id", "x", "y", "width", "height"),
                                                what="box file"), start=2):
                self._add_box(boxes, row["image_id"], row, line, boxes_path)
        mask_dir = self.root / "masks"
        masks = index_files(mask_dir, IMAGE_SUFFIXES) if mask_dir.is_dir() else {}
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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FilmWarning)  # a mask's scale does not matter here
                labels = {i: int(i in boxes or (i in masks and load_radiograph(masks[i]).max() > 0))
                          for i in files}
        records = [Record(image_id, files[image_id], labels[image_id], tuple(boxes.get(image_id, ())),
                          mask_path=masks.get(image_id)) for image_id in self._join(labels, files)]
        for image_id in sorted((boxes.keys() | masks.keys()) - files.keys()):
            self.skipped.add("annotations without an image file", image_id)
        return records
