"""The viewer's payloads: films round-trip exactly (decoded as the browser does: zlib, little-endian), window
presets are the percentile windows they claim (DICOM linear window), ground truth keeps boxes apart and
outlines masks where they are."""
import base64
import zlib

import numpy as np
import pytest

from trust_core.data.dicom import _apply_window
from ui.viewer import (MIN_PRESET_LEVELS, encode, film_of, film_payload, map_panel, patient_orientation, pixel_spacing,
                       truth_payload, window_presets)


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


def test_presets_of_an_8_bit_film_span_enough_levels_not_to_band():
    """On an 8-bit film the bone and mediastinum percentiles hold a few dozen levels; stretched over 256 display
    levels they band (posterize). Each preset keeps its centre and spans at least MIN_PRESET_LEVELS levels."""
    rng = np.random.default_rng(4)
    values = np.clip(rng.normal(120, 30, (256, 256)), 0, 255).round()
    values[:8, :8] = 255  # a bright corner: the top percentiles sit in a narrow band
    narrow = {name: np.percentile(values, high) - np.percentile(values, low)
              for name, (low, high) in (("bone", (75, 99.9)), ("mediastinum", (45, 99.5)))}
    presets = window_presets(values)
    for name in ("lung", "mediastinum", "bone"):
        center, width = presets[name]
        assert width >= MIN_PRESET_LEVELS
        assert center - width / 2 >= -0.5 - 1e-9 and center + width / 2 <= 255.5 + 1e-9  # inside the values
        assert _apply_window(np.array([255.0]), center, width, False)[0] == 1.0  # the brightest still white
        shown = np.unique(np.round(_apply_window(values, center, width, False) * 255))
        assert len(shown) >= min(MIN_PRESET_LEVELS, 256) * 0.5  # many grey levels, not a few bands
    assert min(narrow.values()) < MIN_PRESET_LEVELS  # (the percentile windows alone were narrower)
    wide = np.random.default_rng(5).normal(2000, 500, (64, 64)).round()  # a 12-bit film keeps its windows
    a, b = np.percentile(wide, [75, 99.9])
    assert window_presets(wide)["bone"][1] == pytest.approx(b - a + 1)


def test_a_header_window_that_misses_the_film_opens_it_at_its_range(tmp_path):
    """A 16-bit MONOCHROME1 film whose header declares L 15000 W 30000 over values 0–4095 (flat grey) opens at
    its values' range; a header window that frames the film stays the default."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from trust_core.data import read_dicom

    def write(path, center, width):
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Rows, ds.Columns = "DX", 64, 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.WindowCenter, ds.WindowWidth = center, width
        ds.PixelSpacing, ds.PatientOrientation = [0.2, 0.15], ["R", "F"]
        ds.PixelData = (np.arange(64 * 64, dtype=np.uint16) % 4096).reshape(64, 64).tobytes()
        ds.save_as(path, enforce_file_format=True)
        return read_dicom(path)

    film = film_of(write(tmp_path / "flat.dcm", 15000, 30000))
    assert film["presets"]["default"] == film["presets"]["full"] and film["inverted"]
    assert "misses its values (0–4095)" in film["preset_help"]["default"]
    framed = film_of(write(tmp_path / "framed.dcm", 2000, 3000))
    assert framed["presets"]["default"] == [2000.0, 3000.0]
    # the distance tool's spacing ([row, column] mm) and the markers' orientation come from the header
    assert framed["spacing"] == [0.2, 0.15]
    assert framed["orientation"] == {"right": "R", "bottom": "F", "source": "from the file's Patient Orientation",
                                     "assumed": False}


def test_orientation_and_spacing_rules():
    assert patient_orientation({"ViewPosition": "PA", "BodyPartExamined": "CHEST"})["right"] == "L"
    assert "assumed" in patient_orientation({"ViewPosition": "AP"})["source"]
    assert patient_orientation({"ViewPosition": "LL"}) is None  # a lateral film: no left/right to mark
    assert patient_orientation({"ViewPosition": "PA", "BodyPartExamined": "HAND"}) is None
    assert patient_orientation({"PatientOrientation": ["A", "FR"]}) == {
        "right": "A", "bottom": "FR", "source": "from the file's Patient Orientation", "assumed": False}
    assert patient_orientation({"ViewPosition": "PA"})["assumed"]
    assert pixel_spacing({"ImagerPixelSpacing": [0.143, 0.143]}) == [0.143, 0.143]
    assert pixel_spacing({"PixelSpacing": ["bad", 1]}) is None and pixel_spacing({}) is None
