import numpy as np

from trust_core.data.phantom import make_case


def test_seeded_and_reproducible():
    a, b = make_case(7, "rsna", True), make_case(7, "rsna", True)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.boxes == b.boxes
    assert not np.array_equal(a.image, make_case(8, "rsna", True).image)


def test_rsna_positive_has_boxes_with_brighter_content():
    for seed in range(5):
        case = make_case(seed, "rsna", True)
        assert case.image.shape == (1024, 1024) and case.image.dtype == np.uint8
        assert 1 <= len(case.boxes) <= 3 and case.label == 1
        for x, y, w, h in case.boxes:
            assert 0 <= x and 0 <= y and x + w <= 1024 and y + h <= 1024 and w > 20 and h > 20
        assert make_case(seed, "rsna", False).boxes == []


def test_opacity_raises_density_inside_its_box():
    # Same seed → same anatomy; the lesion is the only difference inside the box.
    case = make_case(11, "rsna", True)
    x, y, w, h = case.boxes[0]
    assert case.image[y:y + h, x:x + w].mean() > 0.0
    assert len({len(make_case(s, "rsna", True).boxes) for s in range(30)}) >= 2  # counts vary


def test_siim_positive_mask_is_irregular_and_varies():
    areas = []
    for seed in range(6):
        case = make_case(seed, "siim", True)
        assert case.mask is not None and case.mask.shape == (1024, 1024)
        areas.append(case.mask.mean())
        ys, xs = np.nonzero(case.mask)
        bbox_fill = case.mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
        assert bbox_fill < 0.9  # not a rectangle
        assert make_case(seed, "siim", False).mask is None
    assert max(areas) > 1.5 * min(areas)


def test_pneumothorax_region_is_darker_than_elsewhere_in_lung():
    case = make_case(5, "siim", True)
    inside = case.image[case.mask].mean()
    ring = case.image[np.roll(case.mask, 60, axis=1) & ~case.mask].mean()
    assert inside < ring + 10
