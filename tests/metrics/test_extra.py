"""The newer metrics against their oracles: Quantus (pointing game, relevance mass accuracy, discrete entropy,
eMPRT's score), scipy (Spearman), scikit-learn (IoU as Jaccard), and hand-computed values."""
import numpy as np
import pytest
import quantus
from scipy.stats import pearsonr, spearmanr
from skimage.feature import hog
from sklearn.metrics import jaccard_score

from trust_core.errors import MetricError
from trust_core.metrics import extra


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 32, 32))
    maps[1, 4:9, 4:9] = 1.0  # tied maxima
    maps[2] = np.round(maps[2], 1)  # many ties
    masks = np.zeros((6, 32, 32), np.uint8)
    for i in range(6):
        top, left = rng.integers(0, 20, 2)
        masks[i, top:top + 10, left:left + 12] = 1
    masks[1, 6, 6] = 1  # one tied maximum inside
    return maps, masks


def test_pointing_game_equals_quantus(pairs):
    maps, masks = pairs
    reference = quantus.PointingGame(disable_warnings=True).evaluate_batch(a_batch=maps[:, None], s_batch=masks[:, None])
    np.testing.assert_array_equal(extra.pointing_game(maps, masks, ties="any"), np.asarray(reference, float))
    tied = np.array([(m == m.max()).sum() for m in maps])
    unique = tied == 1
    assert unique.sum() >= 3 and tied[1] >= 25  # maps[1] has a 5×5 block of maxima, one inside its mask
    np.testing.assert_array_equal(extra.pointing_game(maps, masks, ties="share")[unique], np.asarray(reference, float)[unique])
    assert extra.pointing_game(maps, masks, ties="any")[1] == 1.0
    inside = int((masks[1].astype(bool) & (maps[1] == maps[1].max())).sum())
    assert extra.pointing_game(maps, masks, ties="share")[1] == pytest.approx(inside / tied[1])  # a random tie-break's expected hit


def test_energy_pointing_game_equals_quantus_relevance_mass(pairs):
    maps, masks = pairs
    reference = quantus.RelevanceMassAccuracy(disable_warnings=True).evaluate_batch(a_batch=maps[:, None],
                                                                                    s_batch=masks[:, None])
    np.testing.assert_allclose(extra.energy_pointing_game(maps, masks), reference, rtol=1e-12)
    flat = np.ones((1, 32, 32))
    assert extra.energy_pointing_game(flat, masks[:1])[0] == pytest.approx(masks[0].mean())  # uniform map: area


def test_iou_equals_sklearn_jaccard_and_threshold_tuning(pairs):
    maps, masks = pairs
    for t in extra.MIOU_THRESHOLDS:
        ours = extra.iou_at(maps, masks, t)
        for i in range(len(maps)):
            normalized = (maps[i] - maps[i].min()) / (maps[i].max() - maps[i].min())
            # CheXlocalize binarizes strictly (cam > threshold)
            assert ours[i] == pytest.approx(jaccard_score(masks[i].ravel(), (normalized > t).ravel()))
    best, means = extra.tune_threshold(maps, masks)
    assert means[best] == max(means.values()) and set(means) == set(extra.MIOU_THRESHOLDS)


def test_spearman_equals_scipy_with_ties(pairs):
    maps, _ = pairs
    other = np.roll(maps, 1, axis=0) + 0.1 * maps
    ours = extra.spearman(maps, other)
    for i in range(len(maps)):
        assert ours[i] == pytest.approx(spearmanr(maps[i].ravel(), other[i].ravel()).statistic, abs=1e-12)
    assert extra.spearman(maps, maps) == pytest.approx(np.ones(len(maps)))


def test_hog_similarity_is_pearson_of_skimage_hog(pairs):
    maps, _ = pairs
    other = maps[::-1].copy()
    ours = extra.hog_similarity(maps, other)
    for i in range(len(maps)):
        fa = hog(maps[i], orientations=8, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
        fb = hog(other[i], orientations=8, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
        assert ours[i] == pytest.approx(pearsonr(fa, fb).statistic, abs=1e-10)
    assert extra.hog_similarity(maps, maps) == pytest.approx(np.ones(len(maps)))


@pytest.mark.parametrize("shape", [(32, 32), (128, 128), (40, 27)])
def test_hog_features_equal_skimage_hog_map_by_map(shape):
    """The batched descriptors are scikit-image's: its bins (orientations on a bin edge, at 180°), its C
    float cell sums, L2-Hys; flat, signed, tied and ragged (not a multiple of the cell) maps; more maps
    than one chunk."""
    rng = np.random.default_rng(1)
    maps = rng.random((70 if shape == (32, 32) else 5, *shape))
    maps[0] = 0.0
    maps[1] = np.round(maps[1] * 4) / 4  # many gradients exactly on bin edges (0°, 45°, 90°, 135°)
    maps[2] = -maps[2]
    maps[3, :, : shape[1] // 2] = 1.0  # a vertical edge: orientation 0 / 180
    ours = extra.hog_features(maps)
    for i in range(len(maps)):
        reference = hog(maps[i], orientations=8, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
        np.testing.assert_allclose(ours[i], reference, rtol=0, atol=1e-15)
    with pytest.raises(MetricError, match="at least 16"):
        extra.hog_features(rng.random((2, 12, 40)))


def test_entropy_and_emprt_equal_quantus(pairs):
    maps, _ = pairs
    from quantus.functions.complexity_func import discrete_entropy
    for i in range(len(maps)):
        assert extra.discrete_entropy(maps[i:i + 1])[0] == pytest.approx(discrete_entropy(maps[i], maps[i]))
    randomized = np.random.default_rng(1).random(maps.shape)
    h0 = np.array([discrete_entropy(m, m) for m in maps])
    h1 = np.array([discrete_entropy(m, m) for m in randomized])
    np.testing.assert_allclose(extra.emprt(maps, randomized), (h1 - h0) / h0)  # Quantus EfficientMPRT's score
    concentrated = np.zeros((1, 32, 32))
    concentrated[0, :4, :4] = 1
    assert extra.emprt(concentrated, randomized[:1])[0] > 0  # noise is more complex than a blob


def test_bad_inputs_are_clear_errors(pairs):
    maps, masks = pairs
    with pytest.raises(MetricError, match="no positive pixel"):
        extra.pointing_game(maps[:1], np.zeros_like(masks[:1]))
    with pytest.raises(MetricError, match="NaN"):
        extra.spearman(np.full((1, 8, 8), np.nan), maps[:1, :8, :8])
    with pytest.raises(MetricError, match="same shape|one shape"):
        extra.energy_pointing_game(maps, masks[:2])
