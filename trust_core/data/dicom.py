"""Reading DICOM radiographs (with their LUTs) to float images in [0, 1], and their headers for reading
(ordinary image files, uploads and the reader of either: :mod:`trust_core.data.images`).

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

from ..errors import DicomError

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


_JPEG_SYNTAXES = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                  "1.2.840.10008.1.2.4.70")  # JPEG Baseline, Extended, Lossless, Lossless SV1: a SOF header


def _check_pixel_size(ds, path: Path, geometry: _Geometry, syntax, syntax_name: str) -> None:
    """Refuse pixels that Rows × Columns do not describe. Uncompressed, pydicom reshapes whatever bytes it
    finds: a wrong Columns (1000 over a 1024-wide film) reads as a sheared film, silently, with the excess
    dropped as "padding"; up to one row of excess is tolerated (padding: a Rows one too small reads a film one
    row short, not askew), more is a wrong header (a Columns one too small leaves Rows × bytes over). A JPEG
    frame carries its own dimensions: they must be the header's."""
    if "PixelData" not in ds or syntax is None:
        return
    rows, cols = geometry.rows, geometry.cols
    if not syntax.is_compressed:
        bits = int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        expected = -(-rows * cols * samples * bits // 8)
        held = len(ds.PixelData)
        row_bytes = -(-cols * samples * bits // 8)
        if held < expected:
            raise DicomError(f"the pixel data holds {held:,} bytes where Rows × Columns ({rows} × {cols}, "
                             f"{bits} bits) need {expected:,}: the file is truncated, or its Rows/Columns are "
                             f"wrong; export the film again", path=path)
        if held - expected > max(row_bytes, 1):  # (pydicom's MR_small_padded.dcm: one row of padding, read)
            raise DicomError(f"the pixel data holds {held:,} bytes, but Rows × Columns ({rows} × {cols}, {bits} "
                             f"bits) describe {expected:,}: the header's Rows/Columns are wrong (the film would be "
                             f"read sheared or cut); correct them, or export the film again", path=path)
        return
    if str(syntax) in _JPEG_SYNTAXES:
        from pydicom.encaps import generate_frames
        from pydicom.pixels.utils import _get_jpg_parameters

        try:
            frame = next(generate_frames(ds.PixelData, number_of_frames=1))
            found = _get_jpg_parameters(frame)
        except Exception:
            return  # unreadable: the decoder says so, below
        height, width = found.get("height"), found.get("width")
        if height and width and (height, width) != (rows, cols):
            raise DicomError(f"the {syntax_name} frame is {height} × {width} pixels, but the header's Rows × "
                             f"Columns say {rows} × {cols}: correct Rows/Columns to the frame's, or export the "
                             f"film again", path=path)


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
    _check_pixel_size(ds, path, geometry, syntax, syntax_name)
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
