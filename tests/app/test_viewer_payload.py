"""The viewer's payloads: films round-trip exactly (decoded as the browser does: zlib, little-endian), window
presets are the percentile windows they claim (DICOM linear window), ground truth keeps boxes apart and
outlines masks where they are."""
import base64
import zlib

import numpy as np
import pytest

from trust_core.data.dicom import _apply_window
from ui.viewer import encode, film_payload, map_panel, truth_payload, window_presets


def decoded(payload: dict) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(payload["data"]))
    return np.frombuffer(raw, {"u1": "<u1", "u2": "<u2", "f4": "<f4"}[payload["dtype"]]).reshape(payload["shape"])


@pytest.mark.parametrize("lo, hi, dtype", [(0, 255, "u1"), (-1024, 3071, "u2"), (0, 32767, "u2")])
def test_integer_films_round_trip_exactly(lo, hi, dtype):
    values = np.random.default_rng(0).integers(lo, hi + 1, (64, 48)).astype(np.float32)
    values[0, 0], values[-1, -1] = lo, hi
    film = film_payload(values)
    assert film["dtype"] == dtype and film["shape"] == [64, 48]
    np.testing.assert_array_equal(decoded(film) * film["scale"] + film["offset"], values)


def test_float_films_are_quantized_to_16_bits():
    values = np.random.default_rng(1).random((32, 32)) * 3.7 - 1.2
    film = film_payload(values)
    assert film["dtype"] == "u2"
    error = np.abs(decoded(film) * film["scale"] + film["offset"] - values).max()
    assert error <= film["scale"] / 2 + 1e-12


def test_maps_are_sent_as_exact_float32():
    values = np.random.default_rng(2).random((16, 16)).astype(np.float32)
    values[3, 3] = np.nan
    np.testing.assert_array_equal(decoded(map_panel("grad", "Gradient", values)["map"]), values)
    assert encode(values)["dtype"] == "f4"


@pytest.mark.parametrize("inverted", [False, True])
def test_window_presets_map_their_percentiles_to_black_and_white(inverted):
    values = np.random.default_rng(3).normal(2000, 500, (200, 200)).round()
    presets = window_presets(values, inverted)
    center, width = presets["full"]
    shown = _apply_window(values, center, width, inverted)
    assert shown.min() == 0.0 and shown.max() == 1.0
    # lung: brightness percentiles 1–70 span black to white (on MONOCHROME1 the bright values are the low ones)
    brightness = -values if inverted else values
    a, b = np.percentile(brightness, [1, 70])
    shown = _apply_window(values, *presets["lung"], inverted)
    dark = values[brightness <= a]
    bright = values[brightness >= b]
    assert (_apply_window(dark, *presets["lung"], inverted) <= 1e-6).all()
    assert (_apply_window(bright, *presets["lung"], inverted) >= 1 - 1e-6).all()
    inside = (brightness > a + 50) & (brightness < b - 50)
    assert ((shown[inside] > 0) & (shown[inside] < 1)).all()


def test_truth_keeps_boxes_apart_and_outlines_masks():
    from trust_core.data import Box

    class Boxes:
        def boxes(self, image_id, size, framing):
            return [Box(10, 10, 30, 20), Box(25, 15, 30, 20)]  # overlapping: still two

    assert truth_payload(Boxes(), "x", "stretch", (100, 100))["boxes"] == [[10, 10, 30, 20], [25, 15, 30, 20]]

    class Mask:
        def boxes(self, image_id, size, framing):
            return []

        def mask(self, image_id, shape, framing):
            m = np.zeros(shape, bool)
            m[20:60, 30:50] = True  # 40 × 20 pixels
            m[80:90, 80:95] = True
            return m

    contours = truth_payload(Mask(), "x", "stretch", (100, 100))["contours"]
    assert len(contours) == 2

    def area(poly):  # shoelace
        xy = np.array(poly)
        return 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], 1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], 1)))

    areas = sorted(area(c) for c in contours)
    assert areas[0] == pytest.approx(150, rel=0.05) and areas[1] == pytest.approx(800, rel=0.05)
    xs = [x for c in contours for x, _ in c]
    assert min(xs) == pytest.approx(30, abs=0.6) and max(xs) == pytest.approx(95, abs=0.6)
