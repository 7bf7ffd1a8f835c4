"""Lesion geometry as CheXlocalize defines it (Saporta et al., Nature Machine Intelligence 2022): the number of
instances, the lesion's size relative to the film, and two measures of shape complexity from the rectangle of
minimum area enclosing it — elongation (its long side / its short side) and irrectangularity (1 − lesion area
/ rectangle area).

Departures from CheXlocalize's script, each for a measure that does not depend on how a mask is traced: a
mask is a union of pixel squares, so areas are pixel counts and the enclosing rectangle encloses the pixels'
corners (CheXlocalize fits OpenCV's ``minAreaRect`` to a traced contour through pixel centres and takes the
contour's polygon area, so a one-pixel-wide lesion has area 0 there). Shape measures are those of the largest
instance (CheXlocalize: the longest contour); instances are counted from the annotations when the dataset has
them (boxes, RLE strings, as CheXlocalize counts its annotations: two overlapping boxes are two instances),
else as 8-connected components of the mask.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FEATURES = {  # column → what it measures (one owner for tables, CLI, pages and figures)
    "instances": "number of lesion instances",
    "relative_size": "lesion area / film area",
    "elongation": "long / short side of the minimum-area enclosing rectangle (largest instance)",
    "irrectangularity": "1 − area / minimum-area enclosing rectangle's area (largest instance)",
    "confidence": "the model's probability of the class its maps explain",
}
FEATURE_LABELS = {"instances": "instances", "relative_size": "relative size", "elongation": "elongation",
                  "irrectangularity": "irrectangularity", "confidence": "model confidence"}


@dataclass(frozen=True)
class Geometry:
    instances: int
    relative_size: float
    elongation: float
    irrectangularity: float

    def as_dict(self) -> dict:
        return asdict(self)


def min_area_rectangle(points: np.ndarray) -> tuple[float, float, float]:
    """(width, height, angle in degrees) of the rectangle of minimum area enclosing 2-D ``points`` (x, y):
    one of its sides lies along an edge of their convex hull (rotating calipers, Freeman & Shapira 1975)."""
    from scipy.spatial import ConvexHull

    points = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    hull = points[ConvexHull(points).vertices]
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2))
    best = (np.inf, 0.0, 0.0, 0.0)
    for angle in angles:
        c, s = np.cos(angle), np.sin(angle)
        u = hull @ np.array([c, s])
        v = hull @ np.array([-s, c])
        width, height = u.max() - u.min(), v.max() - v.min()
        if width * height < best[0]:
            best = (width * height, width, height, float(np.degrees(angle)))
    return best[1], best[2], best[3]


def pixel_corners(mask: np.ndarray) -> np.ndarray:
    """The corners (x, y) of every pixel of a boolean mask: the region as a union of unit squares."""
    rows, cols = np.nonzero(mask)
    return np.concatenate([np.stack([cols + dx, rows + dy], axis=1) for dy in (0, 1) for dx in (0, 1)])


def lesion_geometry(mask: np.ndarray, annotations: int = 0) -> Geometry:
    """CheXlocalize's four features of a ground-truth mask at the film's native resolution (see the module
    docstring); ``annotations``: the instance count from the annotations (0: count connected components).
    An empty mask: 0 instances, size 0, NaN shape."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    if count == 0:
        return Geometry(int(annotations), 0.0, float("nan"), float("nan"))
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    width, height, _ = min_area_rectangle(pixel_corners(_outline(largest)))
    area = float(sizes.max())
    return Geometry(int(annotations or count), float(mask.sum()) / mask.size,
                    float(max(width, height) / min(width, height)), float(1.0 - area / (width * height)))


def _outline(region: np.ndarray) -> np.ndarray:
    """The region's pixels that touch its outside (their corners hold every corner of the region's hull)."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(region, structure=np.ones((3, 3), dtype=bool), border_value=0)
    return region & ~inner


def annotation_count(record) -> int:
    """Instances as the annotations give them (boxes, RLE strings, COCO segmentations); 0 where a dataset has
    only a mask (count its components) or combines several readers (count the consensus's components)."""
    if getattr(record, "reader_boxes", ()):
        return 0
    return len(record.boxes) or len(record.rles) or len(getattr(record, "coco", ()))


def dataset_geometry(dataset, image_ids) -> "pd.DataFrame":
    """One row per image: its ground truth's :class:`Geometry` at the film's native resolution."""
    import pandas as pd

    rows = []
    for image_id in image_ids:
        geometry = lesion_geometry(dataset.native_mask(image_id), annotation_count(dataset.record(image_id)))
        rows.append({"image_id": image_id, **geometry.as_dict()})
    return pd.DataFrame(rows, columns=["image_id", "instances", "relative_size", "elongation", "irrectangularity"])
