"""Run-length encoding of the SIIM-ACR Pneumothorax challenge.

Kaggle's *relative* RLE: pixels are numbered column-major (down each column, then across), the first
number of each pair is an offset — from 0 for the first run, from the end of the previous run after
that — and the second a run length. ``-1`` (or an empty string) is an image without pneumothorax.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import DatasetError

EMPTY = "-1"
_INTEGER = re.compile(r"-?[0-9]+")


def rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decode a SIIM relative RLE string into a boolean mask of shape (height, width).

    Raises
    ------
    DatasetError
        Non-integer tokens, an odd number of values, negative offsets, non-positive lengths, or runs
        that extend past the last pixel of the image.
    """
    text = ("" if rle is None else str(rle)).strip()
    flat = np.zeros(height * width, dtype=bool)
    if text in ("", EMPTY):
        return flat.reshape(width, height).T
    tokens = text.split()
    bad = next((t for t in tokens if not _INTEGER.fullmatch(t)), None)
    if bad is not None:  # ASCII digits only: int() would also take '٣' or '1_000'
        raise DatasetError(f"RLE contains a non-integer value {bad[:40]!r}")
    if any(len(t.lstrip("-")) > 15 for t in tokens):
        raise DatasetError("RLE contains a value too large for any image "
                           f"({next(t for t in tokens if len(t.lstrip('-')) > 15)[:40]}…)")
    values = np.array([int(tok) for tok in tokens], dtype=np.int64)
    if values.size % 2:
        raise DatasetError(f"RLE has an odd number of values ({values.size}); expected offset/length pairs")
    offsets, lengths = values[0::2], values[1::2]
    if (offsets < 0).any():
        raise DatasetError(f"RLE has a negative offset ({int(offsets[offsets < 0][0])})")
    if (lengths <= 0).any():
        raise DatasetError(f"RLE has a non-positive run length ({int(lengths[lengths <= 0][0])})")
    if int(offsets.max(initial=0)) > flat.size or int(lengths.max(initial=0)) > flat.size:
        raise DatasetError(f"RLE runs past the end of a {height}x{width} image (a value exceeds its "
                           f"{flat.size} pixels)")
    ends_before = np.concatenate([[0], np.cumsum(offsets + lengths)[:-1]])
    starts = ends_before + offsets
    stops = starts + lengths
    if stops[-1] > flat.size:
        raise DatasetError(f"RLE runs past the end of a {height}x{width} image "
                           f"(last run ends at pixel {int(stops[-1])} of {flat.size})")
    # Mark runs with a difference array: +1 at each start, -1 at each stop.
    marks = np.zeros(flat.size + 1, dtype=np.int32)
    np.add.at(marks, starts, 1)
    np.add.at(marks, stops, -1)
    flat = np.cumsum(marks[:-1]) > 0
    return flat.reshape(width, height).T


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D boolean mask as SIIM relative RLE (``-1`` when empty); inverse of rle_decode."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DatasetError(f"a 2-D mask is expected, got shape {mask.shape}")
    flat = mask.T.reshape(-1).astype(bool)
    if not flat.any():
        return EMPTY
    padded = np.concatenate([[False], flat, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, stops = changes[0::2], changes[1::2]
    lengths = stops - starts
    prev_end = np.concatenate([[0], stops[:-1]])
    offsets = starts - prev_end
    return " ".join(f"{o} {n}" for o, n in zip(offsets.tolist(), lengths.tolist()))
