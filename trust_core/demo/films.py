"""The demo's datasets on disk: phantom films written as real RSNA (DICOM), SIIM (DICOM + RLE) and NIH
(PNG + box list) trees, under the file names their dataset classes read (:mod:`trust_core.data.kaggle`,
:mod:`trust_core.data.findings`). Films and label files are written atomically through :mod:`trust_core.io`,
the label files last."""
from __future__ import annotations

import csv
import io
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ..data.findings import NIHDataset
from ..data.kaggle import RSNADataset, SIIMDataset
from ..data.records import SPLIT_FILE, make_splits, write_splits
from ..io import atomic_path, atomic_write
from ..data.rle import rle_encode
from .anatomy import SPLIT_FRACTIONS, UID_PREFIX, PhantomCase, make_case

def _uid(rng: np.random.Generator) -> str:
    return UID_PREFIX + ".".join(str(int(x)) for x in rng.integers(1, 2**31, 3))


def write_dicom(path: Path, case: PhantomCase, *, patient_id: str, sop_uid: str, study_uid: str,
                series_uid: str) -> None:
    """Write a 1024×1024 8-bit MONOCHROME2 CR image, JPEG Baseline encapsulated (as Kaggle ships)."""
    from PIL import Image
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    buffer = io.BytesIO()
    Image.fromarray(case.image).save(buffer, format="JPEG", quality=95)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture, as Kaggle's
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientName, ds.PatientID = patient_id, patient_id
    ds.PatientSex, ds.PatientAge = case.sex, f"{case.age:03d}Y"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", case.view
    ds.ConversionType = "WSD"
    ds.SeriesDescription = f"view: {case.view}"
    ds.StudyDate = ds.StudyTime = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = case.image.shape
    ds.PixelSpacing = [0.168, 0.168]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def _plan(kind: str, n_images: int, seed: int, positive_fraction: float) -> list[dict]:
    rng = np.random.default_rng([seed, 0 if kind == "rsna" else 1])
    positives = set(rng.permutation(n_images)[: int(round(positive_fraction * n_images))].tolist())
    plan = []
    for i in range(n_images):
        uid_rng = np.random.default_rng([seed, 2 if kind == "rsna" else 3, i])
        plan.append(dict(index=i, case_seed=int(rng.integers(2**31)), positive=i in positives,
                         not_normal=bool(i not in positives and rng.random() < 0.2),
                         patient_id=str(uuid.UUID(bytes=uid_rng.bytes(16), version=4)),
                         sop=_uid(uid_rng), study=_uid(uid_rng), series=_uid(uid_rng)))
    return plan


def _write_one(args) -> dict:
    kind, root, item, anatomy = args
    case = make_case(item["case_seed"], kind, item["positive"], item["not_normal"], anatomy)
    if kind == "rsna":
        path = root / RSNADataset.IMAGES / f"{item['patient_id']}.dcm"
        image_id = item["patient_id"]
    else:
        image_id = item["sop"]
        path = root / SIIMDataset.IMAGE_DIRS[0] / item["study"] / item["series"] / f"{image_id}.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom(path, case, patient_id=item["patient_id"], sop_uid=item["sop"],
                study_uid=item["study"], series_uid=item["series"])
    rles = []
    if case.mask is not None:
        count, labels = cv2.connectedComponents(case.mask.astype(np.uint8), connectivity=8)
        rles = [rle_encode(labels == k) for k in range(1, count)]
    return dict(image_id=image_id, label=case.label, boxes=case.boxes, rles=rles, category=case.category)


def build_phantom_dataset(root: str | Path, kind: str, *, n_images: int = 480, seed: int = 0,
                          positive_fraction: float = 0.45, workers: int | None = None,
                          progress=None, anatomy: str = "phantom") -> Path:
    """Write a phantom dataset in the exact RSNA (``kind='rsna'``) or SIIM (``'siim'``) layout, on
    ``anatomy`` (:data:`ANATOMIES`).

    Returns the dataset root. Files are written atomically; the label CSV is written last, so an
    interrupted build is detected (no CSV) and redone.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    plan = _plan(kind, n_images, seed, positive_fraction)
    jobs = [(kind, root, item, anatomy) for item in plan]
    workers = workers or min(2, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = []
            for result in pool.map(_write_one, jobs, chunksize=4):
                results.append(result)
                if progress:
                    progress(1)
    else:
        results = []
        for job in jobs:
            results.append(_write_one(job))
            if progress:
                progress(1)
    splits = make_splits({r["image_id"]: r["label"] for r in results}, seed=seed, fractions=SPLIT_FRACTIONS)
    write_splits(root / SPLIT_FILE, splits)
    if kind == "rsna":
        _write_rows(root / RSNADataset.CLASS_INFO, ["patientId", "class"],
                    [[r["image_id"], r["category"]] for r in results])
        rows = []
        for r in results:
            if r["boxes"]:
                rows += [[r["image_id"], x, y, w, h, 1] for x, y, w, h in r["boxes"]]
            else:
                rows.append([r["image_id"], "", "", "", "", 0])
        _write_rows(root / RSNADataset.LABELS, ["patientId", "x", "y", "width", "height", "Target"], rows)
    else:
        rows = []
        for r in results:
            rows += [[r["image_id"], f" {rle}"] for rle in r["rles"]] or [[r["image_id"], " -1"]]
        _write_rows(root / SIIMDataset.LABELS, ["ImageId", " EncodedPixels"], rows)
    return root


def _write_rows(path: Path, header: list[str], rows: list[list]) -> None:
    """A CSV file (the csv module's dialect: CRLF line ends, as Kaggle's files), written atomically."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, text.getvalue())


# -- an NIH ChestX-ray14-style dataset with several findings --------------------------------------------
NIH_PHANTOM_FINDINGS = ("Infiltrate", "Pneumothorax")  # the box list's names (Data_Entry: Infiltration)


def _write_nih_one(args) -> dict:
    root, item, anatomy = args
    finding = item["finding"]
    kind = "siim" if finding == "Pneumothorax" else "rsna"
    case = make_case(item["case_seed"], kind, finding is not None, anatomy=anatomy)
    boxes = list(case.boxes)
    if case.mask is not None:  # a pneumothorax region → its bounding box, as NIH's readers drew them
        ys, xs = np.nonzero(case.mask)
        boxes = [(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))]
    from PIL import Image

    path = root / "images_001" / "images" / item["name"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(case.image).save(tmp, format="PNG")  # 8-bit grayscale 1024×1024, as NIH ships
    return dict(name=item["name"], finding=finding, boxes=boxes if finding else [], sex=case.sex, age=case.age,
                view=case.view, patient=item["patient"])


def build_nih_phantom(root: str | Path, *, n_images: int = 240, seed: int = 0, workers: int | None = None,
                      progress=None, anatomy: str = "phantom") -> Path:
    """Write a phantom dataset in NIH ChestX-ray14's layout: ``images_001/images/*.png`` (8-bit, 1024²),
    ``BBox_List_2017.csv`` (boxes of two findings: pneumonia-like infiltrates and pneumothorax) and
    ``Data_Entry_2017.csv`` (``No Finding`` for the clean films). The label files are written last."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])
    plan = []
    for i in range(n_images):
        draw = rng.random()
        finding = "Infiltrate" if draw < 0.35 else "Pneumothorax" if draw < 0.55 else None
        patient = i + 1
        plan.append(dict(name=f"{patient:08d}_000.png", finding=finding, patient=patient,
                         case_seed=int(rng.integers(2**31))))
    jobs = [(root, item, anatomy) for item in plan]
    workers = workers or min(2, os.cpu_count() or 1)
    results = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for result in pool.map(_write_nih_one, jobs, chunksize=4):
                results.append(result)
                if progress:
                    progress(1)
    else:
        for job in jobs:
            results.append(_write_nih_one(job))
            if progress:
                progress(1)
    entry_name = {"Infiltrate": "Infiltration"}
    _write_rows(root / NIHDataset.ENTRIES[0],
                ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
                 "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"],
                [[r["name"], entry_name.get(r["finding"], r["finding"]) if r["finding"] else "No Finding", 0,
                  r["patient"], r["age"], r["sex"], r["view"], 2500, 2048, 0.139, 0.139] for r in results])
    # NIH's own header spells the box columns in one unquoted cell: "Bbox [x,y,w,h]" and 3 empty columns
    lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"]
    lines += [f"{r['name']},{r['finding']},{x},{y},{w},{h}" for r in results for (x, y, w, h) in r["boxes"]]
    atomic_write(root / NIHDataset.LABELS, "\n".join(lines) + "\n")
    return root
