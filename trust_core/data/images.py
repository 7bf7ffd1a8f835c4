"""Reading ordinary image files (PNG, JPEG, TIFF, BMP; 8- or 16-bit, with the detector depth a 16-bit film
really carries) and uploads to float images in [0, 1]; :func:`load_radiograph` reads either kind of film."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import DicomError, ImageError
from .dicom import MAX_PIXELS, DicomImage, read_dicom


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
