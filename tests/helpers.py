"""Helpers shared by tests and the fuzz harness (no fixtures here)."""
from __future__ import annotations

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def write_dicom(path, pixels, *, photometric="MONOCHROME2", bits_stored=None, signed=False, **extra):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-12345", "19700101"
    pixels = np.asarray(pixels)
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1 if pixels.ndim == 2 else pixels.shape[2]
    ds.PhotometricInterpretation = photometric
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def decided(verdict: str, n: int) -> str:
    """The verdict a paired CI gives, or 'inconclusive' below the minimum n that may decide one
    (``trust_core.metrics.stats.MIN_PAIRED_N``)."""
    from trust_core.metrics.stats import MIN_PAIRED_N

    return verdict if n >= MIN_PAIRED_N else "inconclusive"
