"""Coverage-guided fuzzing of the readers that face unchecked files: DICOM, label CSVs, SIIM RLE.

Uses atheris (libFuzzer for Python). The contract under test: for *any* input bytes, a reader either
returns a value that satisfies its invariants or raises a project error (``TrustError`` subclass, which
the CLI and app show as a message). Anything else — another exception type, an invariant broken, a
crash, a hang, a memory blow-up — is a finding, and libFuzzer saves the input as ``crash-*``/``timeout-*``.

    .venv/bin/pip install -r requirements-fuzz.txt
    .venv/bin/python fuzz/fuzz_readers.py dicom -max_total_time=600 -rss_limit_mb=3072 -timeout=20
    .venv/bin/python fuzz/fuzz_readers.py rsna-csv -max_total_time=300
    .venv/bin/python fuzz/fuzz_readers.py siim-csv -max_total_time=300
    .venv/bin/python fuzz/fuzz_readers.py rle -max_total_time=300

The first argument picks the target; the rest go to libFuzzer. A seed corpus (valid and near-valid
inputs: pydicom's small test files, synthetic radiographs in several encodings, label files with BOM and
CRLF) is written to ``fuzz/corpus/<target>`` on first use and grows as libFuzzer finds new coverage.
Instrumented: pydicom and ``trust_core.data`` (numpy, Pillow and the codecs are C and not instrumented).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import atheris
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root, for ``tests.helpers``
warnings.filterwarnings("ignore")

with atheris.instrument_imports(include=["pydicom", "trust_core.data", "trust_core.errors"]):
    import pydicom.pixels  # noqa: F401  (instrumented: the parser and pixel pipeline)
    from trust_core.data.kaggle import RSNADataset, SIIMDataset
    from trust_core.data.dicom import read_dicom
    from trust_core.data.rle import rle_decode, rle_encode
    from trust_core.errors import TrustError

WORK = Path(tempfile.mkdtemp(prefix="trust-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


# -- seeds -------------------------------------------------------------------------------------------
def _dicom_seeds(folder: Path) -> None:
    import pydicom.data

    from tests.helpers import write_dicom

    test_files = Path(pydicom.data.__file__).parent / "test_files"
    for path in sorted(test_files.glob("*.dcm")):
        if path.stat().st_size <= 24_000:
            shutil.copy(path, folder / path.name)
    rng = np.random.default_rng(0)
    write_dicom(folder / "u8.dcm", rng.integers(0, 255, (16, 12), dtype=np.uint8))
    write_dicom(folder / "u16_12bit.dcm", rng.integers(0, 4095, (12, 16), dtype=np.uint16), bits_stored=12)
    write_dicom(folder / "mono1_window.dcm", rng.integers(0, 4095, (8, 8), dtype=np.uint16),
                photometric="MONOCHROME1", WindowCenter=2000, WindowWidth=1000)
    write_dicom(folder / "signed_rescale.dcm", rng.integers(-1000, 1000, (8, 8), dtype=np.int16), signed=True,
                RescaleSlope=2, RescaleIntercept=-1024)


RSNA_SEED = ("patientId,x,y,width,height,Target\n"
             "a,1,2,5,6,1\na,8,8,4,4,1\nb,,,,,0\nc,0,0,16,16,1\n")
SIIM_SEED = "ImageId, EncodedPixels\na, 5 3 10 4\nb, -1\nc, 0 256\nc, 1 2 3 4\n"


def _seed_corpus(target: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    if target == "dicom":
        _dicom_seeds(folder)
    elif target == "rsna-csv":
        for name, text in {"plain": RSNA_SEED, "crlf": RSNA_SEED.replace("\n", "\r\n")}.items():
            (folder / name).write_bytes(text.encode())
        (folder / "bom").write_bytes(b"\xef\xbb\xbf" + RSNA_SEED.encode())
    elif target == "siim-csv":
        (folder / "plain").write_bytes(SIIM_SEED.encode())
        (folder / "bom_crlf").write_bytes(b"\xef\xbb\xbf" + SIIM_SEED.replace("\n", "\r\n").encode())
    elif target == "rle":
        for k, text in enumerate(["-1", "0 1", "5 3 10 4", "0 256", "3 2 1 1 7 9"]):
            (folder / f"s{k}").write_bytes(bytes([16, 16]) + text.encode())


# -- dataset scaffolding: three tiny DICOMs whose ids the CSVs name ----------------------------------
def _dataset_root(kind: str) -> Path:
    from tests.helpers import write_dicom

    root = WORK / kind
    if root.is_dir():
        return root
    rng = np.random.default_rng(1)
    for image_id in "abc":
        folder = root / ("stage_2_train_images" if kind == "rsna" else "dicom-images-train/st/se")
        folder.mkdir(parents=True, exist_ok=True)
        write_dicom(folder / f"{image_id}.dcm", rng.integers(0, 255, (16, 16), dtype=np.uint8))
    return root


# -- targets -----------------------------------------------------------------------------------------
def fuzz_dicom(data: bytes) -> None:
    path = WORK / "input.dcm"
    path.write_bytes(data)
    try:
        image = read_dicom(path)
    except TrustError:
        return
    pixels = image.pixels
    assert pixels.ndim == 2 and pixels.dtype == np.float32, (pixels.shape, pixels.dtype)
    assert np.isfinite(pixels).all(), "non-finite display pixels"
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0, (pixels.min(), pixels.max())


def _check_dataset(dataset) -> None:
    for image_id in dataset.ids():
        mask = dataset.mask(image_id, 16)
        assert mask.shape == (16, 16) and mask.dtype == bool, (mask.shape, mask.dtype)
        assert dataset.label(image_id) in (0, 1)


def _fuzz_csv(kind: str, data: bytes) -> None:
    root = _dataset_root(kind)
    cls, labels = (RSNADataset, RSNADataset.LABELS) if kind == "rsna" else (SIIMDataset, SIIMDataset.LABELS)
    (root / labels).write_bytes(data)
    splits = WORK / f"{kind}-splits.csv"
    splits.unlink(missing_ok=True)
    try:
        _check_dataset(cls(root, image_size=16, split_file=splits))
    except TrustError:
        return


def fuzz_rsna_csv(data: bytes) -> None:
    _fuzz_csv("rsna", data)


def fuzz_siim_csv(data: bytes) -> None:
    _fuzz_csv("siim", data)


def fuzz_rle(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    height = provider.ConsumeIntInRange(1, 64)
    width = provider.ConsumeIntInRange(1, 64)
    text = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
    try:
        mask = rle_decode(text, height, width)
    except TrustError:
        return
    assert mask.shape == (height, width) and mask.dtype == bool
    again = rle_decode(rle_encode(mask), height, width)
    assert np.array_equal(mask, again), "RLE does not round-trip"


TARGETS = {"dicom": fuzz_dicom, "rsna-csv": fuzz_rsna_csv, "siim-csv": fuzz_siim_csv, "rle": fuzz_rle}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in TARGETS:  # the environment carries it to -fork children
        os.environ["TRUST_FUZZ_TARGET"] = sys.argv.pop(1)
    target = os.environ.get("TRUST_FUZZ_TARGET")
    if target not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options] [corpus dirs]")
    corpus = HERE / "corpus" / target
    _seed_corpus(target, corpus)
    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(corpus))  # libFuzzer reads seeds from, and adds new inputs to, this folder
    artifacts = HERE / "findings" / target
    artifacts.mkdir(parents=True, exist_ok=True)
    args.insert(1, f"-artifact_prefix={artifacts}/")
    atheris.Setup(args, TARGETS[target])
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
