import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from trust_core.errors import MetricError
from trust_core.metrics import (auprc, auprc_batch, average_precision, paired_test, ssim, ssim_batch,
                                summarize, one_sided_below)


def sk_auprc(saliency, mask):
    precision, recall, _ = precision_recall_curve(mask.ravel(), saliency.ravel())
    return auc(recall, precision)


def random_case(seed, shape=(24, 20), levels=None):
    rng = np.random.default_rng(seed)
    saliency = rng.random(shape)
    if levels:  # many ties, as in XRAI maps
        saliency = np.round(saliency * levels) / levels
    mask = rng.random(shape) > 0.8
    mask[0, 0] = True
    return saliency.astype(np.float32), mask


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 5, 40])
def test_auprc_equals_sklearn(seed, levels):
    saliency, mask = random_case(seed, levels=levels)
    assert abs(auprc(saliency, mask) - sk_auprc(saliency, mask)) < 1e-6
    assert abs(average_precision(saliency, mask) - average_precision_score(mask.ravel(), saliency.ravel())) < 1e-6


def test_auprc_batch_equals_loop():
    cases = [random_case(s, levels=(None if s % 2 else 8)) for s in range(5)]
    maps = np.stack([c[0] for c in cases])
    masks = np.stack([c[1] for c in cases])
    batch = auprc_batch(torch.from_numpy(maps), torch.from_numpy(masks)).numpy()
    np.testing.assert_allclose(batch, [sk_auprc(m, k) for m, k in cases], atol=1e-6)


@pytest.mark.parametrize("size", [64, 320])
def test_a_lone_map_scores_as_it_does_among_others(size):
    """torch splits a lone large row's reduction over its threads (another summation order than a batch's
    per-row reduction): a map must score the same bits alone (a unit's last image, as the evaluation scores
    each unit when it finishes) as in any batch, on every thread count."""
    rng = np.random.default_rng(size)
    a = torch.from_numpy(rng.random((9, size, size)).astype(np.float32))
    b = torch.from_numpy(rng.random((9, size, size)).astype(np.float32))
    m = torch.from_numpy((rng.random((9, size, size)) < 0.1).astype(np.float32))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(max(2, threads))
        for score in (lambda x, y, g: auprc_batch(x, g), lambda x, y, g: ssim_batch(x, y, data_range=2)):
            together = score(a, b, m).numpy()
            alone = np.array([score(a[k:k + 1], b[k:k + 1], m[k:k + 1]).numpy()[0] for k in range(9)])
            pairs = np.concatenate([score(a[k:k + 2], b[k:k + 2], m[k:k + 2]).numpy() for k in range(0, 8, 2)])
            assert together.tobytes() == alone.tobytes() and together[:8].tobytes() == pairs.tobytes()
    finally:
        torch.set_num_threads(threads)


def test_auprc_properties():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 3:7] = True
    assert auprc(mask.astype(float), mask) == pytest.approx(1.0)  # a perfect map
    constant = np.full((10, 10), 0.5)
    # one threshold: the curve goes from (0, 1) to (1, positive fraction)
    assert auprc(constant, mask) == pytest.approx((1 + mask.mean()) / 2)
    assert auprc(constant, mask) == pytest.approx(sk_auprc(constant, mask))
    assert auprc(1 - mask.astype(float), mask) < 0.6  # an inverted map is poor


def test_auprc_is_not_thresholded_single_point():
    saliency, mask = random_case(3)
    thresholded = (saliency > 0.5).astype(float)
    assert auprc(saliency, mask) != pytest.approx(auprc(thresholded, mask))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("data_range", [2.0, 1.0])
def test_ssim_equals_scikit_image(seed, data_range):
    rng = np.random.default_rng(seed)
    a = rng.random((33, 29))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    ours = ssim(a, b, data_range=data_range)
    reference = structural_similarity(a, b, data_range=data_range)
    assert abs(ours - reference) < 1e-6


def test_ssim_batch_and_properties():
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 40, 40)), rng.random((4, 40, 40))
    batch = ssim_batch(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(batch, [structural_similarity(x, y, data_range=2.0) for x, y in zip(a, b)],
                               atol=1e-6)
    assert ssim(a[0], a[0]) == pytest.approx(1.0)
    assert ssim(a[0], b[0]) == pytest.approx(ssim(b[0], a[0]))  # symmetric
    assert ssim(a[0], b[0], data_range=1.0) < ssim(a[0], b[0], data_range=2.0)


def test_statistics():
    values = np.array([0.1, 0.2, 0.3, np.nan, 0.4])
    s = summarize(values)
    assert s.n == 4 and s.excluded == 1 and s.mean == pytest.approx(0.25) and s.median == pytest.approx(0.25)
    assert s.ci_low <= s.mean <= s.ci_high
    assert summarize(values) == s  # seeded bootstrap
    rng = np.random.default_rng(0)
    x = rng.random(40)
    assert paired_test(x + 0.2, x + rng.normal(0, 0.01, 40)).p_value < 0.005
    assert paired_test(x, x).p_value == 1.0
    assert one_sided_below(x * 0.1, 0.5).p_value < 1e-6 and one_sided_below(x, 0.1).p_value > 0.5


@pytest.mark.parametrize("call, message", [
    (lambda: auprc(np.zeros((3, 3)), np.zeros((3, 4))), "same shape"),
    (lambda: auprc(np.zeros((3, 3)), np.zeros((3, 3))), "no positive pixel"),
    (lambda: auprc(np.full((3, 3), np.nan), np.ones((3, 3))), "NaN"),
    (lambda: auprc(np.zeros((3, 3)), np.full((3, 3), 0.5)), "binary"),
    (lambda: ssim(np.zeros((5, 5)), np.zeros((5, 5))), "at least 7"),
    (lambda: ssim(np.zeros((8, 8)), np.zeros((8, 9))), "same shape"),
    (lambda: ssim(np.zeros((8, 8)), np.zeros((8, 8)), data_range=0), "data_range"),
    (lambda: ssim(np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8, 1))), "2-D"),
])
def test_invalid_inputs(call, message):
    with pytest.raises(MetricError, match=message):
        call()


def test_holm_hand_computed():
    from trust_core.metrics import holm
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 with running maximum
    assert holm([0.01, 0.04, 0.03, float("nan"), 0.005])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.01, 0.04, 0.03, float("nan"), 0.005])[4] == pytest.approx(0.02)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("shift, better, verdict", [(0.3, "greater", "pass"), (-0.3, "greater", "fail"),
                                                    (0.0, "greater", "inconclusive"), (-0.3, "less", "pass"),
                                                    (0.3, "less", "fail")])
def test_paired_comparison_decides_from_the_ci(shift, better, verdict):
    from trust_core.metrics import compare_paired
    rng = np.random.default_rng(0)
    baseline = rng.random(40)
    noise = rng.normal(0, 0.05, 40)
    values = baseline + shift + noise - (noise.mean() if shift == 0 else 0)
    values[3] = np.nan  # a flagged map: the image leaves both sides
    c = compare_paired(values, baseline, better=better)
    assert c.n == 39 and c.baseline == pytest.approx(np.delete(baseline, 3).mean())
    assert c.verdict == verdict and c.ci_low <= c.difference <= c.ci_high
