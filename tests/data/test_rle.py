import numpy as np
import pytest

from trust_core.data import rle_decode, rle_encode
from trust_core.errors import DatasetError


def kaggle_rle2mask(rle, width, height):
    """The SIIM challenge's own decoder (mask_functions.py), for cross-checking."""
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    starts, lengths = array[0::2], array[1::2]
    current_position = 0
    for index, start in enumerate(starts):
        current_position += start
        mask[current_position:current_position + lengths[index]] = 255
        current_position += lengths[index]
    return mask.reshape(width, height)


def test_decode_matches_kaggle_reference_column_major():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 23)) > 0.7
    rle = rle_encode(mask)
    reference = kaggle_rle2mask(rle, 23, 37).T > 0  # Kaggle's mask is transposed (column-major)
    np.testing.assert_array_equal(rle_decode(rle, 37, 23), reference)
    np.testing.assert_array_equal(reference, mask)


def test_small_known_example():
    # 3x2 image, column-major pixel order: (0,0) (1,0) (2,0) (0,1) (1,1) (2,1)
    mask = rle_decode("1 2 1 1", 3, 2)  # pixels 1,2 then skip 1 → pixel 4
    expected = np.zeros((3, 2), bool)
    expected[1, 0] = expected[2, 0] = expected[1, 1] = True
    np.testing.assert_array_equal(mask, expected)
    assert rle_encode(expected) == "1 2 1 1"


@pytest.mark.parametrize("seed", range(5))
def test_round_trip(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((64, 48)) > rng.uniform(0.1, 0.95)
    assert np.array_equal(rle_decode(rle_encode(mask), 64, 48), mask)


def test_empty_and_full():
    assert rle_encode(np.zeros((5, 5), bool)) == "-1"
    assert not rle_decode("-1", 5, 5).any()
    assert not rle_decode(" -1 ", 5, 5).any()
    full = np.ones((4, 6), bool)
    assert rle_encode(full) == "0 24"
    assert rle_decode("0 24", 4, 6).all()


@pytest.mark.parametrize("rle, message", [
    ("1 2 3", "odd number"),
    ("0 10 5 20", "past the end"),
    ("0 26", "past the end"),
    ("a 3", "non-integer"),
    ("-3 4", "negative offset"),
    ("0 0", "non-positive run"),
])
def test_invalid(rle, message):
    with pytest.raises(DatasetError, match=message):
        rle_decode(rle, 5, 5)
