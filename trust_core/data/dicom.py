"""Reading radiographs: DICOM (with its LUTs) and ordinary image files, to float images in [0, 1].

The display pipeline follows PS3.3 C.11 / C.7.6.3: stored values (masked to ``BitsStored``) → modality
LUT (Rescale Slope/Intercept or Modality LUT Sequence) → VOI LUT (VOI LUT Sequence or Window Center /
Width) → MONOCHROME1 inverted so that larger always means brighter. Patient identifiers are not returned
unless explicitly asked for.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DicomError, ImageError

# Attributes that identify a patient or a visit (PS3.15 basic profile subset relevant to this tool).
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs",
    "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers", "AccessionNumber",
    "InstitutionName", "InstitutionAddress", "ReferringPhysicianName", "PerformingPhysicianName",
    "OperatorsName", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime",
    "SeriesTime", "AcquisitionTime", "ContentTime", "StudyID", "StudyInstanceUID",
    "SeriesInstanceUID", "SOPInstanceUID", "DeviceSerialNumber", "StationName", "PatientAge",
    "PatientSex", "PatientWeight", "PatientSize", "MedicalRecordLocator", "IssuerOfPatientID",
)
# Technical attributes that are safe to show and record.
SAFE_KEYWORDS = (
    "Modality", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "PhotometricInterpretation", "SamplesPerPixel", "PixelSpacing", "ImagerPixelSpacing",
    "ViewPosition", "PatientOrientation", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
    "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth",
)
MAX_PIXELS = 8192 * 8192  # larger images are refused before decoding (memory safety)


@dataclass(frozen=True)
class DicomImage:
    """A decoded grayscale radiograph.

    Attributes
    ----------
    pixels : float32 array (H, W) in [0, 1], display-ready (VOI applied, MONOCHROME1 inverted).
    modality_values : float32 array (H, W) after the modality LUT, before VOI (for re-windowing).
    window : (center, width) applied to ``modality_values``, or None when the full range was used.
    metadata : technical, non-identifying attributes.
    identifiers : identifying attributes; empty unless ``include_identifiers=True`` was asked.
    """

    pixels: np.ndarray
    modality_values: np.ndarray
    window: tuple[float, float] | None
    inverted: bool
    metadata: dict = field(default_factory=dict)
    identifiers: dict = field(default_factory=dict)
    path: str = ""

    def windowed(self, center: float, width: float) -> np.ndarray:
        """Display image in [0, 1] for another window (linear, PS3.3 C.11.2.1.2.1)."""
        if not width > 0:
            raise DicomError(f"window width must be positive, got {width}", path=self.path)
        return _apply_window(self.modality_values, center, width, self.inverted)

    @property
    def value_range(self) -> tuple[float, float]:
        return float(self.modality_values.min()), float(self.modality_values.max())


def _apply_window(values: np.ndarray, center: float, width: float, invert: bool) -> np.ndarray:
    # DICOM linear window: values below c - 0.5 - (w-1)/2 map to 0, above c - 0.5 + (w-1)/2 to 1.
    if width <= 1:
        out = (values > center - 0.5).astype(np.float32)
    else:
        out = ((values - (center - 0.5)) / (width - 1) + 0.5).clip(0.0, 1.0).astype(np.float32)
    return 1.0 - out if invert else out


def _first(value):
    """Window attributes may be multi-valued; the first is the default."""
    if value is None:
        return None
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _mask_bits(arr: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Keep only the BitsStored low bits (high bits may carry overlays), sign-extending if signed."""
    if bits_stored >= arr.dtype.itemsize * 8:
        return arr
    work = arr.astype(np.int64)
    work &= (1 << bits_stored) - 1
    if signed:
        sign_bit = 1 << (bits_stored - 1)
        work = (work ^ sign_bit) - sign_bit
    return work


def read_dicom(path: str | Path, *, include_identifiers: bool = False,
               window: tuple[float, float] | None = None) -> DicomImage:
    """Read a single-frame grayscale DICOM radiograph.

    Parameters
    ----------
    path : DICOM file (Part 10, or raw dataset without preamble).
    include_identifiers : return patient identifiers in ``identifiers`` (default: never).
    window : (center, width) to use instead of the file's VOI LUT / window.

    Returns
    -------
    DicomImage

    Raises
    ------
    DicomError
        Not a DICOM file, truncated, no pixel data, colour or multi-frame image, unsupported or
        undecodable transfer syntax, invalid BitsStored, or image dimensions out of bounds.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise DicomError("file not found", path=path)
    if path.stat().st_size == 0:
        raise DicomError("the file is empty (0 bytes)", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except InvalidDicomError:
        raise DicomError("not a DICOM file (no DICM preamble and no recognizable DICOM header)",
                         path=path) from None
    except Exception as exc:  # pydicom raises many types on malformed headers
        raise DicomError(f"the DICOM header cannot be parsed, the file is probably truncated or "
                         f"corrupt ({type(exc).__name__}: {exc})", path=path) from None

    try:
        return _decode(ds, path, include_identifiers=include_identifiers, window=window)
    except DicomError:
        raise
    except MemoryError:
        raise DicomError("the image is too large to decode in the available memory", path=path) from None
    except Exception as exc:  # pydicom parses element values lazily: any access can meet a corrupt one
        raise DicomError(f"the file has an invalid or corrupt DICOM element ({type(exc).__name__}: "
                         f"{str(exc)[:200]})", path=path) from None


@dataclass(frozen=True)
class _Geometry:
    """What the header says about the pixels (checked)."""

    rows: int
    cols: int
    bits_stored: int
    signed: bool
    photometric: str


def _decode(ds, path: Path, *, include_identifiers: bool, window) -> DicomImage:
    """The checks and pixel pipeline of :func:`read_dicom` on a parsed dataset: header, decoding, display."""
    from pydicom.pixels import apply_modality_lut

    geometry = _check_header(ds, path)
    stored, syntax_name = _decode_pixels(ds, path, geometry)
    stored = _mask_bits(stored, geometry.bits_stored, geometry.signed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modality = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    if not np.isfinite(modality).all():
        raise DicomError("pixel values are not finite after the modality LUT", path=path)
    pixels, applied_window = _display(ds, stored, modality, geometry, window, path)
    metadata = {k: _plain(ds.get(k)) for k in SAFE_KEYWORDS if k in ds}
    metadata["TransferSyntax"] = syntax_name
    identifiers = ({k: _plain(ds.get(k)) for k in IDENTIFYING_KEYWORDS if k in ds}
                   if include_identifiers else {})
    return DicomImage(pixels=np.ascontiguousarray(pixels, dtype=np.float32),
                      modality_values=modality.astype(np.float32), window=applied_window,
                      inverted=geometry.photometric == "MONOCHROME1", metadata=metadata, identifiers=identifiers,
                      path=str(path))


def _check_header(ds, path: Path) -> _Geometry:
    """Refuse what is not one grayscale radiograph with sane dimensions and bit depth."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        if b"\xe0\x7f\x10\x00" in path.read_bytes():  # the (7FE0,0010) tag is there but unreadable
            raise DicomError("the pixel data element is cut short: the file is truncated or corrupt",
                             path=path)
        if "Rows" in ds and "Columns" in ds and "BitsAllocated" in ds:
            raise DicomError(f"the header describes a {ds.Rows}x{ds.Columns} image but the file has no pixel "
                             f"data: it is truncated, or its pixels were removed", path=path)
        raise DicomError("the DICOM file has no pixel data: it is truncated, or it is not an image (a "
                         "report, a presentation state or a header-only file)", path=path)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(f"colour image ({photometric}, {samples} samples per pixel): a grayscale "
                         f"radiograph (MONOCHROME1/2) is expected", path=path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise DicomError(f"multi-frame image ({frames} frames): export the single radiograph frame "
                         f"you want to analyse", path=path)
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits_allocated = int(ds.BitsAllocated)
        bits_stored = int(ds.get("BitsStored", bits_allocated))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
    except (AttributeError, TypeError, ValueError) as exc:
        raise DicomError(f"missing or invalid image pixel attributes ({exc})", path=path) from None
    if rows <= 0 or cols <= 0:
        raise DicomError(f"image dimensions are {rows}x{cols}: nothing to display", path=path)
    if rows * cols > MAX_PIXELS:
        raise DicomError(f"image dimensions {rows}x{cols} exceed the supported maximum of "
                         f"{MAX_PIXELS} pixels", path=path)
    if not 1 <= bits_stored <= bits_allocated or bits_allocated not in (1, 8, 16, 32):
        raise DicomError(f"invalid bit depth: BitsStored={bits_stored}, BitsAllocated="
                         f"{bits_allocated} (BitsStored must be between 1 and BitsAllocated)", path=path)
    return _Geometry(rows, cols, bits_stored, signed, photometric)


def _decode_pixels(ds, path: Path, geometry: _Geometry) -> tuple[np.ndarray, str]:
    """The stored pixel array (a decoder for the transfer syntax must be installed) and the syntax name."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntax_name = getattr(syntax, "name", str(syntax))
    if syntax is not None and (not syntax.is_transfer_syntax or syntax.is_compressed):
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            raise DicomError(f"the transfer syntax '{syntax_name}' is not one any installed decoder reads; "
                             f"convert the file to an uncompressed or JPEG 2000 syntax",
                             path=path) from None
        if not decoder.is_available:
            raise DicomError(f"no decoder for the transfer syntax '{syntax_name}' is installed here; convert "
                             f"the file to an uncompressed or JPEG 2000 syntax", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = ds.pixel_array
    except NotImplementedError as exc:
        raise DicomError(f"the transfer syntax '{syntax_name}' cannot be decoded here ({exc}); "
                         f"convert the file to an uncompressed or JPEG 2000 syntax", path=path) from None
    except Exception as exc:
        raise DicomError(f"the pixel data cannot be decoded ({type(exc).__name__}: {exc}); the file is "
                         f"probably truncated or corrupt", path=path) from None
    if stored.ndim != 2 or stored.shape != (geometry.rows, geometry.cols):
        raise DicomError(f"decoded pixel array has shape {stored.shape}, expected ({geometry.rows}, "
                         f"{geometry.cols})", path=path)
    return stored, syntax_name


def _display(ds, stored: np.ndarray, modality: np.ndarray, geometry: _Geometry, window,
             path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Display values in [0, 1] and the window applied: the one asked for, else the VOI LUT, else the
    header's window, else the full range the stored bits can represent; MONOCHROME1 inverted."""
    from pydicom.pixels import apply_voi_lut

    inverted = geometry.photometric == "MONOCHROME1"
    if window is not None:
        applied = (float(window[0]), float(window[1]))
        if not applied[1] > 0:
            raise DicomError(f"window width must be positive, got {applied[1]}", path=path)
        return _apply_window(modality, *applied, inverted), applied
    if "VOILUTSequence" in ds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            voi = np.asarray(apply_voi_lut(stored if "ModalityLUTSequence" in ds else modality, ds),
                             dtype=np.float64)
        lo, hi = float(voi.min()), float(voi.max())
        pixels = ((voi - lo) / (hi - lo) if hi > lo else np.zeros_like(voi)).astype(np.float32)
        return (1.0 - pixels if inverted else pixels), None
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        applied = (center, width)
    else:
        # No VOI: the full range the stored bits can represent, through the modality LUT.
        bits, signed = geometry.bits_stored, geometry.signed
        lo_stored = -(1 << (bits - 1)) if signed else 0
        hi_stored = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        ends = sorted((lo_stored * slope + intercept, hi_stored * slope + intercept))
        applied = ((ends[0] + ends[1] + 1) / 2, ends[1] - ends[0] + 1)
    return _apply_window(modality, *applied, inverted), applied


def _plain(value):
    """A JSON-friendly version of a pydicom value (numbers stay numbers, names become strings)."""
    from pydicom.multival import MultiValue

    if value is None:
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float)):
        return value.real if not isinstance(value, bool) else value
    return str(value)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# The detector depths a 16-bit image container commonly carries (10-, 12- and 14-bit detectors; 8-bit data
# saved as 16-bit): a 16-bit film whose values all stay below 2**d is read as d-bit (see :func:`read_image`).
FILM_DEPTHS = (8, 10, 12, 14)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FilmWarning(UserWarning):
    """A film was read, but not as its container says (a 12-bit film in a 16-bit PNG): the CLI reports
    these (``trust check`` lists every one; ``maps``/``evaluate`` a count)."""

    def __init__(self, message: str, *, path: str | Path, depth: int | None = None):
        self.path = str(path)
        self.reason = message
        self.depth = depth  # the bit depth the film was read at, when it was inferred from its values
        super().__init__(f"{Path(self.path).name}: {message}")


def png_significant_bits(path: str | Path) -> int | None:
    """The bit depth a PNG declares for its samples (its ``sBIT`` chunk), None when it declares none."""
    import struct

    try:
        with open(path, "rb") as fh:
            if fh.read(8) != PNG_SIGNATURE:
                return None
            while True:
                head = fh.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind == b"sBIT":
                    data = fh.read(min(length, 4))
                    return int(data[0]) if data and 1 <= data[0] <= 16 else None
                if kind in (b"IDAT", b"IEND"):
                    return None
                fh.seek(length + 4, 1)  # the data and its CRC
    except OSError:
        return None


def _used_depth(values: np.ndarray, path: Path, min_depth: int | None = None) -> int:
    """The bit depth a 16-bit grayscale image's values are scaled by.

    A PNG that declares its depth (``sBIT``) and keeps its values below 2**depth: that depth. One that
    declares it and has values above it follows the PNG standard (samples scaled to the full 16-bit range,
    the declared depth only informative): 16. Without a declaration, the smallest of :data:`FILM_DEPTHS`
    that holds its maximum and is at least ``min_depth`` (the depth its dataset's other films were read at:
    one detector, one depth), with a :class:`FilmWarning`; else 16."""
    high = float(values.max()) if values.size else 0.0
    declared = png_significant_bits(path) if path.suffix.lower() == ".png" else None
    if declared is not None:
        return declared if high < 2 ** declared else 16
    depth = next((d for d in FILM_DEPTHS if high < 2 ** d and d >= (min_depth or 0)), 16)
    if depth < 16 and high > 0:
        floor = (f"; its dataset's other films need {min_depth} bits, so it is read as they are"
                 if min_depth and depth == min_depth and high < 2 ** (min_depth - 2) else "")
        warnings.warn(FilmWarning(
            f"a 16-bit image whose values all stay below {2 ** depth} (max {high:.0f}): read as {depth}-bit "
            f"(÷ {2 ** depth - 1}), not ÷ 65535, which would bring the film to the model almost black{floor}. If it "
            f"really is a 16-bit film, declare its depth in the PNG (an sBIT chunk of 16)", path=path, depth=depth),
            stacklevel=3)
    return depth


def film_range_note(image: np.ndarray) -> str | None:
    """Why a decoded film in [0, 1] looks wrong (almost black or almost uniform), or None."""
    low, high = float(image.min()), float(image.max())
    if high < 0.1:
        return (f"the film is almost black (values in [{low:.3f}, {high:.3f}] of [0, 1]): a wrong bit depth or "
                f"window? The model would see next to nothing")
    if high - low < 0.05:
        return (f"the film is almost uniform (values in [{low:.3f}, {high:.3f}] of [0, 1]): a blank film, or a "
                f"wrong window?")
    return None


def read_image(path: str | Path, *, min_depth: int | None = None) -> np.ndarray:
    """Read a PNG/JPEG/TIFF/BMP radiograph as float32 (H, W) in [0, 1].

    8-bit grayscale is scaled by 255. 16-bit grayscale is scaled by its *used* bit depth, what a user of a
    10-, 12- or 14-bit detector saved into a 16-bit PNG expects: the depth the PNG declares (``sBIT``), else
    the smallest of 8, 10, 12 or 14 bits that holds the film's maximum (with a :class:`FilmWarning`), else 16
    bits (``min_depth``: at least that many, the depth its dataset's films were found to need, so that one
    detector's films are read alike; see :func:`_used_depth`). Colour images (RGB, CMYK) are converted to luminance. Raises :class:`ImageError` for empty,
    truncated or non-image files.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError("file not found", path=path)
    if path.stat().st_size == 0:
        raise ImageError("the file is empty (0 bytes)", path=path)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"image dimensions {img.width}x{img.height} exceed the supported "
                                 f"maximum of {MAX_PIXELS} pixels", path=path)
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                if not mode.startswith("I;16") and arr.max() <= 255:
                    scale = 255.0  # a 32-bit image holding 8-bit values
                elif arr.max() > 65535:
                    scale = 65535.0
                else:
                    scale = 2.0 ** _used_depth(arr, path, min_depth) - 1
                arr = arr / scale
            elif mode == "F":
                arr = np.asarray(img, dtype=np.float64)
                lo, hi = arr.min(), arr.max()
                arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
            else:
                arr = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image dimensions exceed the supported maximum ({exc})", path=path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"not a readable image file ({type(exc).__name__}: {exc})", path=path) from None
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def load_radiograph(path: str | Path, *, min_depth: int | None = None) -> np.ndarray:
    """DICOM or ordinary image → float32 (H, W) in [0, 1]; image suffixes go to Pillow, all else to DICOM."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path, min_depth=min_depth)
    return read_dicom(path).pixels


UPLOAD_SUFFIXES = (".dcm", ".dicom") + IMAGE_SUFFIXES


def read_upload(name: str, data: bytes, *, max_bytes: int) -> np.ndarray:
    """An uploaded file (its name and bytes) → float32 (H, W) in [0, 1], as :func:`load_radiograph`.

    The bytes are decoded from a private temporary folder that is removed at once (nothing of a
    patient's image stays on disk); only the base name's suffix is used, so a name like ``../../x``
    cannot point anywhere. Raises :class:`ImageError`/:class:`DicomError` naming the upload.
    """
    decoded = decode_upload(name, data, max_bytes=max_bytes)
    return decoded.pixels if isinstance(decoded, DicomImage) else decoded


def decode_upload(name: str, data: bytes, *, max_bytes: int) -> DicomImage | np.ndarray:
    """:func:`read_upload`, keeping a DICOM's stored values: a :class:`DicomImage` for a DICOM upload (so
    that a viewer can window it in its own units), the [0, 1] image for the others."""
    import tempfile

    base = Path(str(name)).name or "upload"
    if len(data) > max_bytes:
        raise ImageError(f"{len(data) / 2**20:.1f} MB is more than the {max_bytes / 2**20:.0f} MB upload limit",
                         path=base)
    suffix = Path(base).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise ImageError(f"unsupported file type {suffix or '(none)'!r}: upload a DICOM (.dcm), PNG or JPEG",
                         path=base)
    with tempfile.TemporaryDirectory(prefix="trust-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return read_image(path) if suffix in IMAGE_SUFFIXES else read_dicom(path)
        except (ImageError, DicomError) as exc:
            raise type(exc)(exc.reason, path=base) from None


# What a header view shows when identifiers are not asked for: an allow-list, since free text (comments,
# descriptions, histories, IDs in LO/SH elements) can name a patient anywhere else. The groups of the file meta
# (0002), acquisition (0018) and image pixel (0028) modules, and the named elements of the general ones; within
# them, still never a person's name, date, time, UID or private element.
HEADER_GROUPS = (0x0002, 0x0018, 0x0028)
HEADER_KEYWORDS = ("Modality", "ConversionType", "ImageType", "Manufacturer", "ManufacturerModelName",
                   "SOPClassUID", "PatientOrientation", "Laterality", "ImageLaterality", "InstanceNumber",
                   "SpecificCharacterSet", "BurnedInAnnotation", "LossyImageCompression",
                   "LossyImageCompressionRatio", "LossyImageCompressionMethod", "PresentationLUTShape")
IDENTIFYING_VRS = ("PN", "DA", "DT", "TM", "UI")


def header_elements(path: str | Path, *, include_identifiers: bool = False, width: int = 120) -> tuple[list[dict], int]:
    """A DICOM file's header for reading: one row per element (file meta, then data set; sequences as their
    item count), ``tag``, ``keyword``, ``VR`` and ``value`` cut to ``width`` characters. Unless identifiers are
    asked for, only the allow-listed elements (:data:`HEADER_GROUPS`, :data:`HEADER_KEYWORDS`) that are no
    person name, date, time, UID (:data:`IDENTIFYING_VRS`), private or :data:`IDENTIFYING_KEYWORDS` element.
    Returns the rows and how many elements were hidden."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # noqa: BLE001 - any parse error: the file's header cannot be shown
        raise DicomError(f"the header cannot be read ({type(exc).__name__}: {exc})", path=path) from exc
    rows, hidden = [], 0
    for element in [*ds.file_meta, *ds]:
        allowed = element.tag.group in HEADER_GROUPS or element.keyword in HEADER_KEYWORDS
        identifying = (not allowed or element.keyword in IDENTIFYING_KEYWORDS or element.VR in IDENTIFYING_VRS
                       or element.tag.is_private)
        if identifying and not include_identifiers:
            hidden += 1
            continue
        if element.VR == "SQ":
            value = f"sequence of {len(element.value)} item{'s' if len(element.value) != 1 else ''}"
        elif isinstance(element.value, (bytes, bytearray)):
            value = f"{len(element.value)} bytes"
        else:
            value = str(element.value)
        rows.append({"tag": f"({element.tag.group:04X},{element.tag.element:04X})", "keyword": element.keyword or "",
                     "VR": element.VR, "value": value if len(value) <= width else value[: width - 1] + "…"})
    return rows, hidden
