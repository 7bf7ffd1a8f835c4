"""Lesion geometry (CheXlocalize's four features) against scikit-image and OpenCV on hand-made shapes."""
import cv2
import numpy as np
import pytest
from skimage.draw import disk, ellipse
from skimage.measure import label, regionprops

from trust_core.analysis.geometry import lesion_geometry, min_area_rectangle, pixel_corners


def opencv(region: np.ndarray) -> tuple[float, float]:
    """(elongation, irrectangularity) from OpenCV's minAreaRect of the region's pixel corners."""
    (_, _), (w, h), _ = cv2.minAreaRect(pixel_corners(region).astype(np.float32))
    return max(w, h) / min(w, h), 1 - region.sum() / (w * h)


def chexlocalize(region: np.ndarray) -> tuple[float, float]:
    """CheXlocalize's own recipe: minAreaRect of the longest traced contour, its polygon area."""
    contours, _ = cv2.findContours(region.astype(np.uint8), 1, 1)
    contour = max(contours, key=len)
    (_, _), (w, h), _ = cv2.minAreaRect(contour)
    return max(w, h) / min(w, h), 1 - cv2.contourArea(contour) / (w * h)


def rotated_ellipse():
    mask = np.zeros((300, 400), bool)
    rr, cc = ellipse(150, 200, 40, 110, rotation=np.deg2rad(30), shape=mask.shape)
    mask[rr, cc] = True
    return mask


def crescent():
    mask = np.zeros((260, 260), bool)
    mask[disk((130, 130), 90, shape=mask.shape)] = True
    mask[disk((130, 170), 80, shape=mask.shape)] = False
    return mask


@pytest.mark.parametrize("make", [rotated_ellipse, crescent])
def test_one_instance_against_skimage_and_opencv(make):
    mask = make()
    geometry = lesion_geometry(mask)
    labelled = label(mask, connectivity=2)
    assert geometry.instances == labelled.max() == 1
    assert geometry.relative_size == pytest.approx(regionprops(labelled)[0].area / mask.size, rel=1e-12)
    elongation, irrectangularity = opencv(mask)
    assert geometry.elongation == pytest.approx(elongation, rel=1e-5)  # OpenCV computes in float32
    assert geometry.irrectangularity == pytest.approx(irrectangularity, rel=1e-5, abs=1e-6)
    # CheXlocalize's contour through pixel centres differs by the half-pixel rim only
    theirs = chexlocalize(mask)
    assert geometry.elongation == pytest.approx(theirs[0], rel=0.03)
    assert geometry.irrectangularity == pytest.approx(theirs[1], abs=0.02)


def test_rotated_ellipse_and_crescent_shapes_by_hand():
    ellipse_geometry = lesion_geometry(rotated_ellipse())
    assert 2.6 < ellipse_geometry.elongation < 2.8  # semi-axes 110 / 40 = 2.75, on the pixel grid
    # an ellipse fills π/4 of its rectangle; the pixel squares add a half-pixel rim around both
    assert ellipse_geometry.irrectangularity == pytest.approx(1 - np.pi * 110 * 40 / (221 * 81), abs=0.01)
    assert lesion_geometry(crescent()).irrectangularity > ellipse_geometry.irrectangularity  # a crescent fills less


def test_two_boxes_two_instances_shape_of_the_larger():
    mask = np.zeros((200, 300), bool)
    mask[10:40, 10:110] = True  # 30 × 100: the larger (3000 px)
    mask[120:170, 200:240] = True  # 50 × 40 (2000 px)
    geometry = lesion_geometry(mask)
    assert geometry.instances == label(mask, connectivity=2).max() == 2
    assert geometry.relative_size == pytest.approx(5000 / 60000)
    assert geometry.elongation == pytest.approx(100 / 30) and geometry.irrectangularity == pytest.approx(0, abs=1e-12)
    # overlapping boxes: one component, two annotations (CheXlocalize counts annotations)
    mask[30:60, 50:150] = True
    assert lesion_geometry(mask).instances == 2 and lesion_geometry(mask, annotations=3).instances == 3
    assert lesion_geometry(mask[:100]).instances == 1


def test_empty_mask_and_a_one_pixel_line():
    empty = lesion_geometry(np.zeros((10, 10), bool))
    assert empty.instances == 0 and empty.relative_size == 0 and np.isnan(empty.elongation)
    line = np.eye(20, dtype=bool)  # a diagonal one-pixel line: its contour's polygon has area 0 in CheXlocalize
    geometry = lesion_geometry(line)
    assert np.isfinite(geometry.elongation) and 0 < geometry.irrectangularity < 1
    assert geometry.elongation == pytest.approx(opencv(line)[0], rel=1e-5)


def test_min_area_rectangle_against_opencv_on_point_clouds():
    rng = np.random.default_rng(0)
    for _ in range(20):
        points = rng.normal(size=(40, 2)) * rng.uniform(0.5, 20, size=2) @ np.array([[1, 0.3], [0.2, 1]])
        width, height, _ = min_area_rectangle(points)
        (_, _), (w, h), _ = cv2.minAreaRect(points.astype(np.float32))
        assert width * height == pytest.approx(w * h, rel=1e-4)
        assert max(width, height) / min(width, height) == pytest.approx(max(w, h) / min(w, h), rel=1e-4)
