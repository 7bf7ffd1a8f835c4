import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from trust_core.data import read_dicom, read_image
from trust_core.errors import DicomError, ImageError

from ..helpers import write_dicom

RG1 = ["RG1_UNCR.dcm", "RG1_UNCI.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm"]


@pytest.mark.parametrize("name", RG1)
def test_real_chest_film_all_encodings(name):
    image = read_dicom(get_testdata_file(name))
    assert image.pixels.shape == (1955, 1841) and image.pixels.dtype == np.float32
    assert 0.0 <= image.pixels.min() < 0.2 and 0.8 < image.pixels.max() <= 1.0
    assert image.inverted and image.window == (15000.0, 30000.0)
    assert image.identifiers == {}
    assert "PatientName" not in image.metadata and "PatientID" not in image.metadata


def test_lossless_encodings_decode_identically():
    raw = read_dicom(get_testdata_file("RG1_UNCR.dcm"))
    j2k = read_dicom(get_testdata_file("RG1_J2KR.dcm"))
    np.testing.assert_array_equal(raw.pixels, j2k.pixels)
    lossy = read_dicom(get_testdata_file("RG1_J2KI.dcm")).pixels
    assert np.abs(lossy - read_dicom(get_testdata_file("RG1_UNCI.dcm")).pixels).mean() < 0.01


def test_monochrome1_is_inverted_and_window_matches_dicom_formula():
    image = read_dicom(get_testdata_file("RG1_UNCR.dcm"))
    stored = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array.astype(float)
    c, w = 15000.0, 30000.0
    expected = 1 - np.clip((stored - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    # Body (high attenuation, low stored values in MONOCHROME1) is bright after inversion.
    assert image.pixels[stored < np.percentile(stored, 5)].mean() > image.pixels.mean()


def test_identifiers_only_on_request():
    path = get_testdata_file("RG1_UNCR.dcm")
    assert read_dicom(path).identifiers == {}
    ids = read_dicom(path, include_identifiers=True).identifiers
    assert ids["PatientName"] == "CompressedSamples^RG1" and ids["PatientID"] == "9RG1"


def test_rewindowing():
    image = read_dicom(get_testdata_file("RG1_UNCR.dcm"))
    narrow = image.windowed(8000, 4000)
    assert narrow.shape == image.pixels.shape and (narrow == 0).mean() > (image.pixels == 0).mean()
    with pytest.raises(DicomError, match="width must be positive"):
        image.windowed(100, 0)


def test_bits_stored_masks_high_bits(tmp_path):
    values = np.arange(16, dtype=np.uint16).reshape(4, 4) * 200
    polluted = values | 0xF000  # overlay bits above BitsStored=12
    clean = read_dicom(write_dicom(tmp_path / "a.dcm", values, bits_stored=12)).pixels
    dirty = read_dicom(write_dicom(tmp_path / "b.dcm", polluted, bits_stored=12)).pixels
    np.testing.assert_array_equal(clean, dirty)
    # no window: the full 12-bit range maps to [0, 1]
    np.testing.assert_allclose(clean, values / 4095.0, atol=1e-6)


def test_signed_pixels_and_rescale(tmp_path):
    values = np.array([[-1024, 0], [1000, 3071]], dtype=np.int16)
    image = read_dicom(write_dicom(tmp_path / "s.dcm", values, signed=True, bits_stored=13,
                                   RescaleSlope=2, RescaleIntercept=-10))
    np.testing.assert_allclose(image.modality_values, values * 2.0 - 10)
    assert image.pixels[0, 0] < image.pixels[0, 1] < image.pixels[1, 0] < image.pixels[1, 1]


def test_voi_window_from_file(tmp_path):
    values = np.linspace(0, 4000, 64, dtype=np.uint16).reshape(8, 8)
    image = read_dicom(write_dicom(tmp_path / "w.dcm", values, WindowCenter=2000, WindowWidth=1000))
    assert image.window == (2000.0, 1000.0)
    assert image.pixels[values < 1400].max() == 0 and image.pixels[values > 2600].min() == 1


# -- bad inputs: a specific, readable error naming the file ----------------------------------------

def test_not_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("this is a text file, not an image")
    with pytest.raises(DicomError, match="notes.dcm: not a DICOM file"):
        read_dicom(path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(DicomError, match="empty"):
        read_dicom(tmp_path / "empty.dcm")


def test_truncated_file(tmp_path):
    data = open(get_testdata_file("RG1_UNCR.dcm"), "rb").read()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(DicomError, match="cut.dcm: .*(truncated|corrupt)"):
        read_dicom(tmp_path / "cut.dcm")


@pytest.mark.parametrize("wrong", [{"Columns": 60}, {"Rows": 60}, {"Rows": 60, "Columns": 60}])
def test_wrong_rows_or_columns_over_raw_pixels_refused(tmp_path, wrong):
    """Uncompressed, pydicom reshapes whatever bytes it finds: Columns 60 over a 64-wide film read as a
    sheared film, its excess bytes dropped as "padding", with no error. Refused, naming the file and fix."""
    film = (np.arange(64 * 64) % 251).astype(np.uint16).reshape(64, 64)
    path = write_dicom(tmp_path / "sheared.dcm", film)
    ds = pydicom.dcmread(path)
    for key, value in wrong.items():
        setattr(ds, key, value)
    ds.save_as(path)
    with pytest.raises(DicomError, match=r"sheared.dcm: the pixel data holds 8,192 bytes, but Rows × Columns "
                                         r"\(\d+ × \d+, 16 bits\) describe [\d,]+: the header's Rows/Columns are wrong"):
        read_dicom(path)
    ds.Rows, ds.Columns = 64, 70  # fewer bytes than the header needs
    ds.save_as(path)
    with pytest.raises(DicomError, match="holds 8,192 bytes where Rows × Columns \\(64 × 70, 16 bits\\) need 8,960"):
        read_dicom(path)


def test_padding_is_not_a_wrong_header(tmp_path):
    """An 8-bit film of odd size carries one padding byte (DICOM values are of even length), and pydicom's own
    MR_small_padded.dcm one row of excess padding: both read as they are."""
    padded = read_dicom(get_testdata_file("MR_small_padded.dcm"))
    assert padded.pixels.shape == (64, 64)
    film = (np.arange(63 * 63) % 251).astype(np.uint8).reshape(63, 63)
    path = write_dicom(tmp_path / "odd.dcm", film)
    np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, film)
    assert read_dicom(path).pixels.shape == (63, 63)


@pytest.mark.parametrize("name", ["JPEG-lossy.dcm"])  # (JPEG-LL.dcm: no decoder installed here)
def test_jpeg_frame_of_other_size_than_the_header_refused(tmp_path, name):
    """A JPEG frame carries its own dimensions (its SOF header): a header that disagrees is named, with both
    sizes, before any decoder runs."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.Rows = 1000
    ds.save_as(tmp_path / "wrong.dcm")
    with pytest.raises(DicomError, match=r"wrong.dcm: the JPEG .* frame is 1024 × 256 pixels, but the header's Rows × "
                                         r"Columns say 1000 × 256: correct Rows/Columns"):
        read_dicom(tmp_path / "wrong.dcm")


def test_truncated_jpeg2000(tmp_path):
    data = open(get_testdata_file("RG1_J2KR.dcm"), "rb").read()
    (tmp_path / "cut.dcm").write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(DicomError, match="(truncated|corrupt)"):
        read_dicom(tmp_path / "cut.dcm")


def test_no_pixel_data(tmp_path):
    path = write_dicom(tmp_path / "x.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(DicomError, match="no pixel data"):
        read_dicom(path)


def test_rgb_refused(tmp_path):
    path = write_dicom(tmp_path / "rgb.dcm", np.zeros((4, 4, 3), np.uint8), photometric="RGB")
    with pytest.raises(DicomError, match="colour image"):
        read_dicom(path)


def test_multiframe_refused(tmp_path):
    path = write_dicom(tmp_path / "mf.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2
    ds.PixelData = np.zeros((2, 4, 4), np.uint16).tobytes()
    ds.save_as(path)
    with pytest.raises(DicomError, match="multi-frame"):
        read_dicom(path)


def test_invalid_bits_stored(tmp_path):
    path = write_dicom(tmp_path / "bits.dcm", np.zeros((4, 4), np.uint16), bits_stored=20)
    with pytest.raises(DicomError, match="BitsStored"):
        read_dicom(path)


def test_missing_file(tmp_path):
    with pytest.raises(DicomError, match="not found"):
        read_dicom(tmp_path / "nope.dcm")


def test_read_png_8_and_16_bit(tmp_path):
    from PIL import Image
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(tmp_path / "a.png"), [[0.0, 1.0]])
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "b.png")
    np.testing.assert_allclose(read_image(tmp_path / "b.png"), [[0.0, 1.0]])


def test_renamed_text_file_is_not_an_image(tmp_path):
    (tmp_path / "scan.png").write_text("hello")
    with pytest.raises(ImageError, match="scan.png: not a readable image"):
        read_image(tmp_path / "scan.png")


def test_header_view_hides_identifying_elements_unless_asked(tmp_path):
    """The explorer's header view: technical elements shown; a name, an ID, a date and free text planted in
    every kind of element that can carry them (comments, descriptions, histories, institution, private tags,
    sequences) never shown unless identifiers are asked for."""
    import pydicom
    from pydicom.dataset import Dataset

    from trust_core.data.dicom import header_elements

    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    secret = "JANE-DOE-4711"
    ds.PatientName, ds.PatientID, ds.OtherPatientIDs = secret, secret, secret
    ds.PatientComments = ds.AdditionalPatientHistory = ds.StudyDescription = f"seen by {secret}"
    ds.InstitutionName, ds.AdmissionID, ds.RequestedProcedureID = secret, secret, secret
    ds.Occupation, ds.StudyDate, ds.AccessionNumber = secret, "20240131", secret
    ds.add_new(0x00111010, "LO", secret)  # a private element
    item = Dataset()
    item.PatientName = secret
    ds.ReferencedPatientSequence = [item]
    path = tmp_path / "planted.dcm"
    ds.save_as(path)
    rows, hidden = header_elements(path)
    shown = " ".join(f"{r['keyword']} {r['value']}" for r in rows)
    assert secret not in shown and "20240131" not in shown and hidden >= 14
    assert {"Modality", "Rows", "Columns", "BitsStored", "PhotometricInterpretation"} <= {r["keyword"] for r in rows}
    rows, hidden = header_elements(path, include_identifiers=True)
    assert hidden == 0 and any(r["keyword"] == "PatientName" and r["value"] == secret for r in rows)
    assert all(len(r["value"]) <= 120 for r in rows)
