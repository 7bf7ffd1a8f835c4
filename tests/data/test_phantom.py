"""Demo films on both anatomies (RG1's and the synthetic phantom's): seeded, lesions where the labels say,
pneumothorax darker, and on RG1 the real film's anatomy, varied, with lesions inside its lung fields."""
import functools

import numpy as np
import pytest

from trust_core.demo import anatomy as phantom
from trust_core.demo.anatomy import ANATOMIES

make_case = phantom.make_case

both = pytest.mark.parametrize("anatomy", ANATOMIES)


@both
def test_seeded_and_reproducible(anatomy):
    a, b = make_case(7, "rsna", True, anatomy=anatomy), make_case(7, "rsna", True, anatomy=anatomy)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.boxes == b.boxes
    assert not np.array_equal(a.image, make_case(8, "rsna", True, anatomy=anatomy).image)


@both
def test_rsna_positive_has_boxes_with_brighter_content(anatomy):
    for seed in range(5):
        case = make_case(seed, "rsna", True, anatomy=anatomy)
        assert case.image.shape == (1024, 1024) and case.image.dtype == np.uint8
        assert 1 <= len(case.boxes) <= 3 and case.label == 1
        for x, y, w, h in case.boxes:
            assert 0 <= x and 0 <= y and x + w <= 1024 and y + h <= 1024 and w > 20 and h > 20
        assert make_case(seed, "rsna", False, anatomy=anatomy).boxes == []


@both
def test_opacity_raises_density_inside_its_box(anatomy):
    """The same seed draws the same anatomy with and without opacities: inside the boxes, the positive film
    is brighter relative to its whole film than the negative one (exposure is drawn after the lesions, so
    films are compared in their own standardized units)."""
    brighter = []
    for seed in range(10):
        positive = make_case(seed, "rsna", True, anatomy=anatomy)
        negative = make_case(seed, "rsna", False, anatomy=anatomy)
        inside = np.zeros((1024, 1024), bool)
        for x, y, w, h in positive.boxes:
            inside[y:y + h, x:x + w] = True
        z = [(c.image[inside].mean() - c.image.mean()) / c.image.std() for c in (positive, negative)]
        brighter.append(z[0] > z[1])
    assert sum(brighter) >= 9, brighter
    assert len({len(make_case(s, "rsna", True, anatomy=anatomy).boxes) for s in range(30)}) >= 2  # counts vary


@both
def test_siim_positive_mask_is_irregular_and_varies(anatomy):
    areas = []
    for seed in range(6):
        case = make_case(seed, "siim", True, anatomy=anatomy)
        assert case.mask is not None and case.mask.shape == (1024, 1024)
        areas.append(case.mask.mean())
        ys, xs = np.nonzero(case.mask)
        bbox_fill = case.mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
        assert bbox_fill < 0.9  # not a rectangle
        assert make_case(seed, "siim", False, anatomy=anatomy).mask is None
    assert max(areas) > 1.5 * min(areas)


@both
def test_pneumothorax_region_is_darker_than_elsewhere_in_lung(anatomy):
    case = make_case(5, "siim", True, anatomy=anatomy)
    inside = case.image[case.mask].mean()
    ring = case.image[np.roll(case.mask, 60, axis=1) & ~case.mask].mean()
    assert inside < ring  # air where the lung collapsed: darker


def test_rg1_films_are_the_real_film_varied():
    """Each RG1 demo film correlates strongly with RG1 itself (its anatomy) but no two are alike (pose,
    habitus, elastic field, exposure)."""
    import cv2

    base = cv2.resize(phantom._rg1()[0], (256, 256), interpolation=cv2.INTER_AREA)
    films = [cv2.resize(make_case(s, "rsna", False, anatomy="rg1").image.astype(np.float32), (256, 256),
                        interpolation=cv2.INTER_AREA) for s in range(4)]
    for film in films:
        assert np.corrcoef(base.ravel(), film.ravel())[0, 1] > 0.6  # pixelwise, after the deformation
    assert np.corrcoef(films[0].ravel(), films[1].ravel())[0, 1] < 0.995
    synthetic = cv2.resize(make_case(0, "rsna", False, anatomy="phantom").image.astype(np.float32), (256, 256))
    assert np.corrcoef(base.ravel(), synthetic.ravel())[0, 1] < 0.4  # the phantom is another anatomy


def test_rg1_lesions_lie_in_its_lung_fields():
    """Opacities' boxes and pneumothorax masks fall inside the (deformed) hand-outlined lung fields."""
    import cv2

    for seed in range(6):
        rng = np.random.default_rng(seed)
        lungs = phantom._FilmAnatomy(rng).lung  # the same seed's anatomy as make_case draws first
        lungs = cv2.resize(lungs, (1024, 1024)) > 0.3
        case = make_case(seed, "rsna", True, anatomy="rg1")
        for x, y, w, h in case.boxes:
            assert lungs[y + h // 2, x + w // 2]
        mask = make_case(seed, "siim", True, anatomy="rg1").mask
        siim_lungs = cv2.resize(phantom._FilmAnatomy(np.random.default_rng(seed)).lung, (1024, 1024)) > 0.3
        assert (mask & siim_lungs).sum() >= 0.95 * mask.sum()


def test_an_unknown_anatomy_is_refused():
    with pytest.raises(ValueError, match="anatomy"):
        make_case(0, "rsna", True, anatomy="cartoon")


def test_rg1_lung_outlines_lie_on_its_lung_fields():
    """The hand-drawn outlines enclose RG1's dark, air-filled lungs: darker than the mediastinum and the
    bones and soft tissue outside them."""
    import cv2

    film, lungs = phantom._rg1()
    base = cv2.resize(film, (phantom.BASE, phantom.BASE), interpolation=cv2.INTER_AREA)
    inside = (lungs[0][1] + lungs[1][1]) > 0.5
    mediastinum = np.zeros_like(inside)
    mediastinum[100:350, 235:275] = True
    assert not (inside & mediastinum).any()
    outside = ~cv2.dilate(inside.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    outside[:40] = False  # the collimated top edge
    assert base[inside].mean() < base[mediastinum].mean() - 0.1
    assert base[inside].mean() < base[outside].mean()
