"""XRAI against PAIR's implementation: same segments, same ranking, same maps."""
import numpy as np
import pytest
import saliency.core as pair
import torch
from saliency.core import xrai as pair_xrai

from trust_core import explain
from trust_core.saliency.xrai import SegmentParams, segment_masks, xrai_rank

from .test_exactness import hwc, pair_call


def phantom_like_image(seed, size=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    img = 0.5 * np.sin(6 * xx + seed) * np.cos(4 * yy) + 0.2 * rng.normal(size=(size, size))
    img = np.clip(img, -1, 1).astype(np.float32)
    return np.repeat(img[..., None], 3, axis=2)


@pytest.mark.parametrize("seed", range(3))
def test_segments_equal_pair(seed):
    image = phantom_like_image(seed)
    reference = pair_xrai._get_segments_felzenszwalb(image)
    ours = segment_masks(image, SegmentParams())
    assert ours.shape[0] == len(reference)
    for mine, theirs in zip(ours.numpy(), reference):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("algorithm", ["full", "fast"])
@pytest.mark.parametrize("seed", range(3))
def test_ranking_equals_pair(seed, algorithm):
    image = phantom_like_image(seed)
    segments = pair_xrai._get_segments_felzenszwalb(image)
    attr = np.random.default_rng(seed + 10).normal(size=image.shape[:2]).astype(np.float32)
    method = pair.XRAI._xrai if algorithm == "full" else pair.XRAI._xrai_fast
    reference, _ = method(attr=attr, segs=segments, area_perc_th=1.0, min_pixel_diff=50,
                          gain_fun=pair_xrai._gain_density, integer_segments=True) \
        if algorithm == "full" else method(attr=attr, segs=segments, min_pixel_diff=50,
                                           gain_fun=pair_xrai._gain_density, integer_segments=True)
    ours = xrai_rank(torch.from_numpy(attr), torch.from_numpy(np.stack(segments)), algorithm=algorithm)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-6)


def test_partial_area_threshold_equals_pair():
    image = phantom_like_image(4)
    segments = pair_xrai._get_segments_felzenszwalb(image)
    attr = np.random.default_rng(4).normal(size=image.shape[:2]).astype(np.float32)
    reference, _ = pair.XRAI._xrai(attr=attr, segs=segments, area_perc_th=0.3, min_pixel_diff=50)
    ours = xrai_rank(torch.from_numpy(attr), torch.from_numpy(np.stack(segments)), area_threshold=0.3)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["strided", "uint8"])
def test_ranking_of_other_mask_layouts_equals_pair(layout):
    """The ranking reads masks by pixel and counts them in numpy on the CPU: a non-contiguous view (every other
    mask of a larger stack) and integer masks (any nonzero entry in the segment) give PAIR's ranking, at 128²."""
    image = phantom_like_image(5, size=128)
    segments = pair_xrai._get_segments_felzenszwalb(image)
    attr = np.random.default_rng(5).normal(size=image.shape[:2]).astype(np.float32)
    reference, _ = pair.XRAI._xrai(attr=attr, segs=segments, area_perc_th=1.0, min_pixel_diff=50,
                                   gain_fun=pair_xrai._gain_density, integer_segments=True)
    stack = torch.from_numpy(np.stack(segments))
    if layout == "strided":  # the segments at the even positions of a stack interleaved with empty masks
        masks = torch.stack([stack, torch.zeros_like(stack)], 1).reshape(-1, *stack.shape[1:])[::2]
        assert not masks.is_contiguous()
    else:
        masks = stack.to(torch.uint8) * 3
    ours = xrai_rank(torch.from_numpy(attr), masks)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-6)


def test_xrai_end_to_end_equals_pair(tiny_model):
    x = torch.from_numpy(np.transpose(phantom_like_image(1, 32), (2, 0, 1)).copy())[None]
    result = explain(tiny_model, x, methods=["xrai"], xrai_steps=8)
    params = pair.XRAIParameters(steps=8, algorithm="full")
    reference = pair.XRAI().GetMask(hwc(x[0]), pair_call(tiny_model, int(result.targets[0])), batch_size=8,
                                    extra_parameters=params)
    np.testing.assert_allclose(result.raw["xrai"][0], reference, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("radius", [0, 1, 2, 5, 8])
def test_row_decomposed_dilation_equals_scikit_image(radius):
    """The GPU path's dilation (max-pools per footprint row), run here on CPU tensors."""
    from scipy import ndimage
    from skimage.morphology import disk

    from trust_core.saliency.xrai import dilate, dilate_by_rows

    rng = np.random.default_rng(radius)
    masks = rng.random((6, 37, 29)) > 0.97
    masks[0] = False
    masks[1, 0, 0] = masks[1, -1, -1] = True  # corners: nothing may wrap or leak past an edge
    footprint = disk(radius)
    expected = np.stack([ndimage.binary_dilation(m, structure=footprint) for m in masks])
    np.testing.assert_array_equal(dilate_by_rows(torch.from_numpy(masks), footprint).numpy(), expected)
    np.testing.assert_array_equal(dilate(torch.from_numpy(masks), radius).numpy(), expected)  # the CPU path


def test_xrai_post_processing_options_equal_pair_output():
    """'abs' is PAIR's grayscale visualization of XRAI's output (what the paper's preset uses);
    'minmax' is plain min–max of it, so the least important (negative-density) segments stay at 0.
    The negative share is counted on PAIR's own output. The model (logit 0 = Σ x) and the ramp image
    make the left half's attributions negative."""
    from .test_exactness import pair_map
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2)).eval()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0] = 1.0
        model[1].bias.copy_(torch.tensor([100.0, 0.0]))
    ramp = torch.linspace(-1, 1, 32).view(1, 1, 32).expand(3, 32, 32)
    x = (ramp + 0.05 * torch.sin(torch.arange(32.0)).view(1, 32, 1))[None].contiguous()
    maps = {rule: explain(model, x, methods=["xrai"], xrai_steps=8, xrai_postprocess=rule)
            for rule in ("abs", "minmax")}
    params = pair.XRAIParameters(steps=8, algorithm="full")
    reference = pair.XRAI().GetMask(hwc(x[0]), pair_call(model, 0), batch_size=8, extra_parameters=params)
    assert 0.2 < (reference < 0).mean() < 0.8  # the case where the two rules part
    np.testing.assert_allclose(maps["abs"]["xrai"][0], pair_map(reference[..., None]), rtol=1e-4, atol=1e-5)
    expected = (reference - reference.min()) / (reference.max() - reference.min())
    np.testing.assert_allclose(maps["minmax"]["xrai"][0], expected, rtol=1e-4, atol=1e-5)
    most_negative = reference == reference.min()
    assert maps["minmax"]["xrai"][0][most_negative].max() == 0.0 and maps["abs"]["xrai"][0][most_negative].min() > 0.5
    for result in maps.values():
        assert result.stats["xrai"][0]["negative_fraction"] == pytest.approx(float((reference < 0).mean()), abs=1e-6)
