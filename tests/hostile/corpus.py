"""The hostile-input corpus: files nobody checked, generated here (nothing is downloaded).

Each :class:`Case` writes its input under a folder and says what the project must do with it:

- ``error``: raise a project error (a ``TrustError``) whose message names the file and matches
  ``match`` — the CLI prints it without a traceback and exits with status 2;
- ``skip``: read the rest and count the bad item under the reason ``match`` (reported by the CLI);
- ``ok``: read it correctly (the value checks are in ``check``).

Categories: dicom, image (PNG/JPEG and uploads), csv (label files and RLE), checkpoint, config.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from ..helpers import write_dicom

GOOD_IDS = ("a", "b", "c")


@dataclass
class Case:
    id: str
    category: str
    build: Callable[[Path], dict]  # writes the input; returns what the runners need
    expect: str  # error | skip | ok
    match: str = ""  # regex in the error message, or the skip reason
    names: bool = True  # the error message must name the file
    check: Callable | None = None  # value check for ok cases
    upload_only: bool = False  # an upload with no on-disk counterpart (size, suffix, name)
    extra: dict = field(default_factory=dict)
    warns: str = ""  # regex of a line the command line must print (a warning for an ok case)


def _pixels(shape=(64, 64), dtype=np.uint16, high=4095, seed=0):
    return np.random.default_rng(seed).integers(0, high, shape, dtype=dtype)


def _dicom(name: str, **kwargs):
    def build(folder: Path) -> dict:
        pixels = kwargs.pop("pixels", None)
        path = write_dicom(folder / name, _pixels() if pixels is None else pixels, **kwargs)
        return {"file": path}
    return build


def _dicom_edit(name: str, edit: Callable, **write_kwargs):
    """A valid file written, then its bytes or dataset edited."""
    def build(folder: Path) -> dict:
        path = write_dicom(folder / name, _pixels(), **write_kwargs)
        edit(path)
        return {"file": path}
    return build


def _truncate(fraction: float):
    def edit(path: Path):
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    return edit


def _dataset_edit(**changes):
    """Change elements — to invalid values too (pydicom's own validation is switched off to write them)."""
    def edit(path: Path):
        import pydicom
        from pydicom import config
        saved = config.settings.reading_validation_mode, config.settings.writing_validation_mode
        config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
        try:
            ds = pydicom.dcmread(path)
            for key, value in changes.items():
                if value is None:
                    delattr(ds, key)
                else:
                    setattr(ds, key, value)
            ds.save_as(path)
        finally:
            config.settings.reading_validation_mode, config.settings.writing_validation_mode = saved
    return edit


def _patch(changes: dict, old: bytes, new: bytes):
    """Write valid ``changes``, then replace their bytes with an invalid value pydicom would refuse to write."""
    def edit(path: Path):
        _dataset_edit(**changes)(path)
        data = path.read_bytes()
        assert data.count(old) == 1
        path.write_bytes(data.replace(old, new))
    return edit


def _syntax(uid: str):
    def edit(path: Path):
        import pydicom
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = uid
        ds.save_as(path, enforce_file_format=True)
    return edit


def _raw(name: str, data: bytes):
    def build(folder: Path) -> dict:
        path = folder / name
        path.write_bytes(data)
        return {"file": path}
    return build


def _copy_testdata(name: str, as_name: str):
    def build(folder: Path) -> dict:
        path = folder / as_name
        path.write_bytes(Path(get_testdata_file(name)).read_bytes())
        return {"file": path}
    return build


def _corrupt_jpeg2000(offset: int, length: int, name: str):
    """A JPEG 2000 radiograph with ``length`` bytes of its codestream overwritten from ``offset`` (a
    fuzzed J2K made python-gdcm abort the whole process; the decoders we ship raise or decode)."""
    def build(folder: Path) -> dict:
        data = bytearray(Path(get_testdata_file("RG1_J2KR.dcm")).read_bytes())
        start = data.index(b"\xff\x4f\xff\x51")  # SOC + SIZ: the codestream
        data[start + offset:start + offset + length] = (bytes(range(256)) * (length // 256 + 1))[:length]
        path = folder / name
        path.write_bytes(bytes(data))
        return {"file": path}
    return build


def _private_tags(folder: Path) -> dict:
    import pydicom
    path = write_dicom(folder / "private.dcm", _pixels())
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0011, "ACME Imaging", create=True)
    block.add_new(0x01, "LO", "vendor value")
    block.add_new(0x02, "OB", b"\x00\xff" * 50)
    ds.add_new(0x00191010, "UN", b"\x01\x02\x03")  # private without a creator
    ds.save_as(path)
    return {"file": path}


def _non_ascii(folder: Path) -> dict:
    path = write_dicom(folder / "nonascii.dcm", _pixels(), SpecificCharacterSet="ISO_IR 192",
                       PatientName="Müller^Jürgen=山田^太郎", InstitutionName="Hôpital Saint-Éloi")
    return {"file": path}


def _png(name: str, array: np.ndarray, mode: str | None = None):
    def build(folder: Path) -> dict:
        path = folder / name
        Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
        return {"file": path}
    return build


def _cmyk_jpeg(folder: Path) -> dict:
    path = folder / "cmyk.jpg"
    rgb = Image.fromarray(np.stack([_pixels(dtype=np.uint8, high=255, seed=s) for s in range(3)], -1))
    rgb.convert("CMYK").save(path, format="JPEG")
    return {"file": path}


def _bomb_png(folder: Path) -> dict:
    path = folder / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(path, optimize=True)  # tiny file, 400 Mpx claimed
    return {"file": path}


def _truncated_png(folder: Path) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(_pixels(dtype=np.uint8, high=255)).save(buffer, format="PNG")
    path = folder / "cut.png"
    path.write_bytes(buffer.getvalue()[:200])
    return {"file": path}


# -- label files ---------------------------------------------------------------------------------------
RSNA_HEADER = "patientId,x,y,width,height,Target\n"


def _labelled(kind: str, images: str, labels: str):
    """A builder of a dataset in ``kind``'s layout: three good DICOMs and the label file ``text``."""
    def with_text(text: str | bytes, *, ids=GOOD_IDS):
        def build(folder: Path) -> dict:
            (folder / images).mkdir(parents=True, exist_ok=True)
            for k, image_id in enumerate(ids):
                write_dicom(folder / images / f"{image_id}.dcm", _pixels(seed=k))
            path = folder / labels
            path.write_bytes(text.encode() if isinstance(text, str) else text)
            return {"file": path, "dataset": f"{kind}:{folder}", "image": ids[0]}
        return build
    return with_text


SIIM_HEADER = "ImageId,EncodedPixels\n"
_rsna = _labelled("rsna", "stage_2_train_images", "stage_2_train_labels.csv")
_siim = _labelled("siim", "dicom-images-train/1.2.3/1.2.3.4", "train-rle.csv")


def _rsna_split_file(folder: Path) -> dict:
    info = _rsna(RSNA_HEADER + "a,1,1,5,5,1\nb,,,,,0\nc,2,2,4,4,1\n")(folder)
    (folder / "splits.csv").write_text("image_id,split\na,train\nb,holdout\nc,test\n")
    return {**info, "file": folder / "splits.csv"}


# -- the multi-finding datasets (NIH, VinDr, CheXlocalize) -------------------------------------------------
NIH_BOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
NIH_ENTRIES = "Image Index,Finding Labels\na.png,Mass\nb.png,No Finding\n"


def _nih(boxes: str, *, bad_png: str | None = None, finding: str = "Mass", images=("a.png", "b.png")):
    """NIH's layout: 1024² 8-bit PNGs, the box list ``boxes`` and a Data_Entry file; ``bad_png`` makes
    a.png RGB or 16-bit (then the error must name the PNG)."""
    def build(folder: Path) -> dict:
        (folder / "images").mkdir(parents=True, exist_ok=True)
        for name in images:
            array = np.full((1024, 1024), 90, np.uint8)
            if name == "a.png" and bad_png == "rgb":
                array = np.stack([array] * 3, axis=-1)
            elif name == "a.png" and bad_png == "16-bit":
                array = array.astype(np.uint16) * 256
            Image.fromarray(array).save(folder / "images" / name)
        (folder / "Data_Entry_2017.csv").write_text(NIH_ENTRIES)
        path = folder / "BBox_List_2017.csv"
        path.write_text(NIH_BOX_HEADER + boxes)
        return {"file": folder / "images" / "a.png" if bad_png else path, "dataset": f"nih:{folder}", "image": "a.png",
                "open": {"finding": finding}, "args": ["--finding", finding], "images": True}
    return build


VINDR_HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"


def _vindr(text: str):
    """VinDr's layout: train/<id>.dicom (120×100) and train.csv."""
    def build(folder: Path) -> dict:
        (folder / "train").mkdir(parents=True, exist_ok=True)
        for k, image_id in enumerate(("a", "b")):
            write_dicom(folder / "train" / f"{image_id}.dicom", _pixels((100, 120), seed=k))
        path = folder / "train.csv"
        path.write_text(text)
        return {"file": path, "dataset": f"vindr:{folder}", "image": "a", "open": {"finding": "Cardiomegaly", "readers": "union"},
                "args": ["--finding", "Cardiomegaly", "--readers", "union"], "images": True}
    return build


def _coco(mask: np.ndarray) -> dict:
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def _nih_entries(text: str):
    """NIH's layout with a broken Data_Entry file (the error names it)."""
    def build(folder: Path) -> dict:
        info = _nih("a.png,Mass,10,10,50,50\n")(folder)
        path = folder / "Data_Entry_2017.csv"
        path.write_text(text)
        return {**info, "file": path}
    return build


def _chexlocalize_edit(edit):
    """CheXlocalize's layout, its segmentation file edited (``edit(data)``)."""
    def build(folder: Path) -> dict:
        import json

        info = _chexlocalize()(folder)
        data = json.loads(info["file"].read_text())
        edit(data)
        info["file"].write_text(json.dumps(data))
        return info
    return build


def _corrupt_counts(data):
    entry = data["patient1_study1_view1_frontal"]["Edema"]
    entry["counts"] = entry["counts"][:-3] + "@@@"


def _chexlocalize(*, rle_shape=(60, 50), extra_id: str | None = None, text: str | None = None):
    """CheXlocalize's layout: a validation segmentation file and CheXpert JPEGs (60×50) by path."""
    def build(folder: Path) -> dict:
        data = {}
        for k in (1, 2):
            image_id = f"patient{k}_study1_view1_frontal"
            target = folder / "valid" / f"patient{k}" / "study1"
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((60, 50), 100, np.uint8)).save(target / "view1_frontal.jpg")
            mask = np.zeros(rle_shape if k == 1 else (60, 50), bool)
            mask[5:20, 5:20] = k == 1
            data[image_id] = {"Edema": _coco(mask)}
        if extra_id:
            data[extra_id] = {"Edema": _coco(np.ones((60, 50), bool))}
        path = folder / "gt_segmentations_val.json"
        path.write_text(text if text is not None else __import__("json").dumps(data))
        return {"file": path, "dataset": f"chexlocalize:{folder}", "image": "patient1_study1_view1_frontal",
                "open": {"finding": "Edema"}, "args": ["--finding", "Edema"], "images": True}
    return build


# -- checkpoints ---------------------------------------------------------------------------------------
def _checkpoint(mutate: Callable[[Path], None] | None = None, *, arch="resnet_tiny", num_classes=2,
                name="model.pt", meta_arch=None):
    def build(folder: Path) -> dict:
        from trust_core.models import build as build_model, save
        torch.manual_seed(0)
        path = save(build_model(arch, num_classes=num_classes), folder / name, arch=arch,
                    meta={"input_size": 32})
        if mutate is not None:
            mutate(path)
        return {"file": path, "model": path}
    return build


class _Exploit:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle_code(path: Path) -> None:
    from trust_core.models import build as build_model
    torch.save({"format": "trust", "state_dict": build_model("resnet_tiny").state_dict(),
                "payload": _Exploit(path.with_name("PICKLE-CODE-RAN"))}, path)


def _state_dict_of(arch: str):
    def mutate(path: Path) -> None:
        from trust_core.models import build as build_model
        torch.save(build_model(arch).state_dict(), path)
    return mutate


def _text(path: Path) -> None:
    path.write_text("this is a radiology report, not a model\n")


# -- configuration ---------------------------------------------------------------------------------------
def _config(*args: str):
    def build(folder: Path) -> dict:
        return {"args": list(args)}
    return build


# -- a researcher's own data (issue 27): what was silently wrong ------------------------------------------------
def _png_with_sbit(array: np.ndarray, bits: int) -> bytes:
    """A 16-bit grayscale PNG with an sBIT chunk (the significant bits it declares) before its image data."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    data = buffer.getvalue()
    chunk = struct.pack(">I", 1) + b"sBIT" + bytes([bits])
    chunk += struct.pack(">I", zlib.crc32(b"sBIT" + bytes([bits])) & 0xFFFFFFFF)
    at = data.index(b"IDAT") - 4  # the length field of the first IDAT chunk
    return data[:at] + chunk + data[at:]


def _png16(name: str, high: int, *, sbit: int | None = None, scaled: bool = False):
    """A 16-bit PNG film whose values stay below ``high`` (a 12-bit detector: 4096), optionally declaring
    ``sbit`` significant bits; ``scaled``: as the PNG standard stores them, scaled to the full 16-bit range
    (left-shifted, the high bits replicated into the low ones)."""
    def build(folder: Path) -> dict:
        array = np.random.default_rng(0).integers(high // 8, high, (64, 64), dtype=np.uint16)
        if scaled:
            shift = 16 - int(np.log2(high))
            array = (array << shift) | (array >> (int(np.log2(high)) - shift))
        path = folder / name
        if sbit is None:
            Image.fromarray(array).save(path)
        else:
            path.write_bytes(_png_with_sbit(array, sbit))
        return {"file": path}
    return build


def _check_used_depth(depth: int, high: int):
    def check(image):
        import pytest

        _check_range(image)
        assert image.max() == pytest.approx((high - 1) / (2 ** depth - 1), abs=0.02)
    return check


def _folder(*, mask_shape=(48, 64), film_shape=(64, 48), film: np.ndarray | None = None, warn_only=False):
    """A ``folder`` dataset: images/film1.png (``film_shape`` as height × width), film2.png, and a mask for
    film1 of ``mask_shape`` (height × width; a transposed one by default), labels.csv."""
    def build(folder: Path) -> dict:
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(exist_ok=True)
        pixels = film if film is not None else _pixels(film_shape, np.uint8, 255)
        Image.fromarray(pixels).save(folder / "images" / "film1.png")
        Image.fromarray(_pixels(film_shape, np.uint8, 255, seed=1)).save(folder / "images" / "film2.png")
        mask = np.zeros(mask_shape, np.uint8)
        mask[5:20, 5:25] = 255
        Image.fromarray(mask).save(folder / "masks" / "film1.png")
        (folder / "labels.csv").write_text("image_id,label\nfilm1,1\nfilm2,0\n")
        return {"file": folder / "masks" / "film1.png", "dataset": f"folder:{folder}", "image": "film1",
                "images": True}
    return build


def _with_finding(builder, finding: str):
    """A multi-finding layout opened with another ``finding`` (a name from the dataset's other files)."""
    def build(folder: Path) -> dict:
        info = builder(folder)
        return {**info, "open": {**info.get("open", {}), "finding": finding}, "args": ["--finding", finding]}
    return build


def _torchscript(path: Path) -> None:
    import warnings

    from trust_core.models import build as build_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(build_model("resnet_tiny").eval(), torch.zeros(1, 3, 32, 32)), str(path))


def _safetensors(path: Path) -> None:
    from safetensors.torch import save_file

    from trust_core.models import build as build_model
    save_file(build_model("resnet_tiny").state_dict(), str(path))


CHEXNET_CLASSES = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                   "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]


def _spec(folder: Path, name: str, table: dict) -> Path:
    from trust_core.models.spec import to_toml

    path = folder / name
    path.write_text(to_toml(table))
    return path


def _chexnet_pth_tar(folder: Path) -> dict:
    """CheXNet's layout as shared (``model.pth.tar``, the pre-1.6 pickle format, DataParallel's ``module.``, a
    ``densenet121.`` wrapper, legacy ``norm.1`` names, a Sequential head, optimizer state), on a small
    DenseNet; the spec names its target in lower case."""
    import re

    import torchvision

    kwargs = {"growth_rate": 12, "block_config": [2, 2, 2, 2], "num_init_features": 24, "bn_size": 2,
              "num_classes": 14}
    torch.manual_seed(0)
    net = torchvision.models.DenseNet(**{**kwargs, "block_config": tuple(kwargs["block_config"])})
    legacy = {}
    for k, v in net.state_dict().items():
        k = re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k)
        legacy["module.densenet121." + k.replace("classifier.", "classifier.0.")] = v
    weights = folder / "model.pth.tar"
    torch.save({"epoch": 7, "arch": "densenet121", "state_dict": legacy, "best_loss": 0.15,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}}, weights,
               _use_new_zipfile_serialization=False)
    spec = _spec(folder, "chexnet.toml", {"source": "torchvision.models:DenseNet", "weights": weights.name,
                                          "target": "pneumonia", "source_kwargs": kwargs,
                                          "preprocessing": {"size": 32, "normalization": "imagenet"},
                                          "outputs": {"activation": "sigmoid", "classes": CHEXNET_CLASSES}})
    return {"file": weights, "load": spec, "model": spec}


def _check_chexnet(model):
    from trust_core.models.info import info_of

    assert info_of(model).target == CHEXNET_CLASSES.index("Pneumonia")
    assert len(info_of(model).meta["weights_adapted"]) == 3


def _xrv(normalization: str):
    """A torchxrayvision DenseNet's state_dict saved from a pretrained model (its ``op_threshs`` buffer)."""
    def build(folder: Path) -> dict:
        import pytest

        xrv = pytest.importorskip("torchxrayvision")
        torch.manual_seed(0)
        small = {"growth_rate": 8, "block_config": [1, 1, 1, 1], "num_init_features": 8, "bn_size": 2}  # fast
        net = xrv.models.DenseNet(weights=None, **{**small, "block_config": (1, 1, 1, 1)})
        net.op_threshs = torch.tensor([0.05] * 14 + [float("nan")] * 4)
        weights = folder / "xrv-densenet.pth"
        torch.save(net.state_dict(), weights)
        spec = _spec(folder, f"xrv-{normalization}.toml", {
            "source": "torchxrayvision:DenseNet", "weights": weights.name, "target": "Pneumonia",
            "source_kwargs": small,
            "preprocessing": {"size": 32, "channels": 1, "normalization": normalization},
            "outputs": {"activation": "sigmoid"}})
        return {"file": weights, "load": spec, "model": spec}
    return build


def _check_xrv(model):
    from trust_core.models.info import info_of

    meta = info_of(model).meta
    assert len(meta["known_buffers"]["op_threshs"]) == 18 and meta["known_buffers"]["op_threshs"][-1] is None
    assert any("op_threshs" in note for note in meta["weights_adapted"])
    assert not hasattr(model, "op_threshs") or model.op_threshs is None  # the logit is explained


def _occupy(name: str, *, args=()):
    """A file where the command's output (``out``) or cache (``cache``) folder goes."""
    def build(folder: Path) -> dict:
        (folder.parent / name).write_text("a researcher's notes\n")
        return {"args": [a.format(parent=folder.parent) for a in args]}
    return build


def _check_inverted(image):
    assert image.shape == (64, 64) and 0 <= image.min() and image.max() <= 1


def _check_range(image):
    assert image.ndim == 2 and image.dtype == np.float32 and np.isfinite(image).all()
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > image.min()


CASES: list[Case] = [
    # -- DICOM ---------------------------------------------------------------------------------------
    Case("dicom-zero-bytes", "dicom", _raw("zero.dcm", b""), "error", "empty"),
    Case("dicom-text-renamed", "dicom", _raw("notes.dcm", b"Findings: no pneumothorax.\n" * 20), "error",
         "not a DICOM file"),
    Case("dicom-truncated-header", "dicom", _dicom_edit("cut_header.dcm", _truncate(0.05)), "error",
         "truncated"),
    Case("dicom-truncated-pixels", "dicom", _dicom_edit("cut_pixels.dcm", _truncate(0.6)), "error",
         "truncated|corrupt"),
    Case("dicom-no-pixel-data", "dicom", _dicom_edit("nopixels.dcm", _dataset_edit(PixelData=None)), "error",
         "no pixel data"),
    Case("dicom-bits-stored-zero", "dicom", _dicom_edit("bits0.dcm", _dataset_edit(BitsStored=0)), "error",
         "bit depth"),
    Case("dicom-bits-stored-too-many", "dicom", _dicom_edit("bits20.dcm", _dataset_edit(BitsStored=20)),
         "error", "bit depth"),
    Case("dicom-zero-rows", "dicom", _dicom_edit("rows0.dcm", _dataset_edit(Rows=0)), "error", "dimensions"),
    Case("dicom-huge-dimensions", "dicom", _dicom_edit("huge.dcm", _dataset_edit(Rows=60000, Columns=60000)),
         "error", "exceed the supported maximum"),
    Case("dicom-multiframe", "dicom", _dicom("multi.dcm", pixels=_pixels((3, 64, 64)).reshape(192, 64),
                                             NumberOfFrames=3, Rows=64, Columns=64), "error", "multi-frame"),
    Case("dicom-rgb", "dicom", _dicom("rgb.dcm", pixels=_pixels((64, 64, 3), np.uint8, 255),
                                      photometric="RGB"), "error", "colour image"),
    Case("dicom-corrupt-number-of-frames", "dicom",  # what the fuzzer found in a pydicom test file
         _dicom_edit("frames.dcm", _patch(dict(NumberOfFrames="1234567"), b"1234567 ", b"1A      ")), "error",
         "invalid or corrupt"),
    Case("dicom-private-syntax", "dicom", _dicom_edit("private_syntax.dcm", _syntax("1.2.826.0.1.3680043.99.1")),
         "error", "transfer syntax"),
    Case("dicom-jpeg2000-bad-header", "dicom", _corrupt_jpeg2000(4, 40, "j2k_header.dcm"), "error",
         "cannot be decoded"),
    Case("dicom-jpeg2000-damaged-blocks", "dicom", _corrupt_jpeg2000(400, 2000, "j2k_blocks.dcm"), "ok",
         check=_check_range),  # decoders tolerate damaged code blocks: garbage pixels, but no crash
    Case("dicom-jpeg-ls", "dicom", _copy_testdata("JPEGLSNearLossless_16.dcm", "jls.dcm"), "ok",
         check=_check_range),
    Case("dicom-rle-lossless", "dicom", _copy_testdata("MR_small_RLE.dcm", "rle.dcm"), "ok", check=_check_range),
    Case("dicom-big-endian", "dicom", _copy_testdata("MR_small_bigendian.dcm", "big.dcm"), "ok",
         check=_check_range),
    Case("dicom-deflated", "dicom", _copy_testdata("image_dfl.dcm", "deflated.dcm"), "ok", check=_check_range),
    Case("dicom-monochrome1", "dicom", _dicom("mono1.dcm", photometric="MONOCHROME1"), "ok",
         check=_check_inverted),
    Case("dicom-private-tags", "dicom", _private_tags, "ok", check=_check_range),
    Case("dicom-non-ascii-names", "dicom", _non_ascii, "ok", check=_check_range),
    Case("dicom-signed-rescale", "dicom", _dicom("signed.dcm", pixels=_pixels(dtype=np.int16, high=2000) - 1000,
                                                 signed=True, RescaleSlope=2, RescaleIntercept=-1024), "ok",
         check=_check_range),
    # -- images and uploads ----------------------------------------------------------------------------
    Case("png-zero-bytes", "image", _raw("empty.png", b""), "error", "empty"),
    Case("png-renamed-text", "image", _raw("report.png", b"Impression: normal chest.\n" * 10), "error",
         "not a readable image"),
    Case("png-truncated", "image", _truncated_png, "error", "not a readable image"),
    Case("png-decompression-bomb", "image", _bomb_png, "error", "exceed the supported maximum"),
    Case("png-16-bit", "image", _png("deep.png", _pixels(dtype=np.uint16, high=65535)), "ok", check=_check_range),
    Case("jpeg-cmyk", "image", _cmyk_jpeg, "ok", check=_check_range),
    Case("upload-too-large", "image", _raw("big.dcm", b"\0" * 4096), "error", "upload limit",
         upload_only=True, extra={"max_bytes": 1024}),
    Case("upload-wrong-type", "image", _raw("run.exe", b"MZ\x90\x00"), "error", "unsupported file type",
         upload_only=True),
    Case("upload-path-in-name", "image", _png("deep2.png", _pixels(dtype=np.uint8, high=255)), "ok",
         check=_check_range, upload_only=True, extra={"name": "../../../../etc/cron.d/x.png"}),
    # -- label CSVs and RLE -------------------------------------------------------------------------------
    Case("rsna-wrong-columns", "csv", _rsna("patient,x,y,w,h,label\na,1,1,5,5,1\n"), "error",
         "lacks the column"),
    Case("rsna-empty-file", "csv", _rsna(""), "error", "lacks the column"),
    Case("rsna-bad-number", "csv", _rsna(RSNA_HEADER + "a,one,1,5,5,1\n"), "error", "must be a number"),
    Case("rsna-nan-number", "csv", _rsna(RSNA_HEADER + "a,nan,1,5,5,1\n"), "error", "not finite"),
    Case("rsna-negative-box", "csv", _rsna(RSNA_HEADER + "a,1,1,-5,5,1\n"), "error", "non-positive"),
    Case("rsna-contradictory-target", "csv", _rsna(RSNA_HEADER + "a,1,1,5,5,1\na,,,,,0\n"), "error",
         "Target 0 and Target 1"),
    Case("rsna-not-utf8", "csv", _rsna((RSNA_HEADER + "a,1,1,5,5,1\n").encode() + b"\xe9\xff,,,,,0\n"), "error",
         "not UTF-8"),
    Case("rsna-box-outside-image", "csv", _rsna(RSNA_HEADER + "a,500,500,5,5,1\n"), "error",
         "entirely outside"),
    Case("rsna-bom-crlf", "csv", _rsna(b"\xef\xbb\xbf" + (RSNA_HEADER + "a,1,1,5,5,1\nb,,,,,0\n")
                                      .replace("\n", "\r\n").encode()), "ok"),
    Case("rsna-duplicate-rows", "csv", _rsna(RSNA_HEADER + "a,1,1,5,5,1\na,1,1,5,5,1\nb,,,,,0\n"), "skip",
         "duplicate box rows"),
    Case("rsna-label-without-image", "csv", _rsna(RSNA_HEADER + "a,1,1,5,5,1\nghost,,,,,0\n"), "skip",
         "labels without an image file"),
    Case("rsna-unknown-split", "csv", _rsna_split_file, "error", "unknown split"),
    Case("siim-overlong-run", "csv", _siim(SIIM_HEADER + "a,10 5000\nb,-1\n"), "error", "runs past the end"),
    Case("siim-odd-values", "csv", _siim(SIIM_HEADER + "a,10 5 7\nb,-1\n"), "error", "malformed RLE"),
    Case("siim-huge-integer", "csv", _siim(SIIM_HEADER + "a,1 99999999999999999999999\nb,-1\n"), "error",
         "too large|runs past"),
    Case("siim-non-ascii-digits", "csv", _siim(SIIM_HEADER + "a,١ ٢\nb,-1\n"), "error", "malformed RLE"),
    Case("siim-mask-and-empty", "csv", _siim(SIIM_HEADER + "a,1 2\na,-1\n"), "error", "both -1"),
    Case("siim-duplicate-ids", "csv", _siim(SIIM_HEADER + "a,1 2\na,1 2\nb,-1\n"), "skip", "duplicate RLE rows"),
    Case("siim-bom-crlf", "csv", _siim(b"\xef\xbb\xbf" + (SIIM_HEADER + "a,1 2 3 4\nb,-1\n")
                                      .replace("\n", "\r\n").encode()), "ok"),
    # -- NIH, VinDr, CheXlocalize ------------------------------------------------------------------------------
    Case("nih-box-outside-film", "csv", _nih("a.png,Mass,1000,10,50,50\n"), "error", "ends outside the 1024×1024"),
    Case("nih-zero-size-box", "csv", _nih("a.png,Mass,10,10,0,50\n"), "error", "zero or negative size"),
    Case("nih-unknown-finding-row", "csv", _nih("a.png,Masses,10,10,50,50\n"), "error", "unknown finding 'Masses'"),
    Case("nih-box-without-image", "csv", _nih("a.png,Mass,10,10,50,50\nghost.png,Mass,10,10,5,5\n"), "skip",
         "box rows without an image file"),
    Case("nih-rgb-png", "csv", _nih("a.png,Mass,10,10,50,50\n", bad_png="rgb"), "error",
         r"8-bit grayscale PNG; this one is RGB .*convert a copy \(never the original\)"),
    Case("nih-16-bit-png", "csv", _nih("a.png,Mass,10,10,50,50\n", bad_png="16-bit"), "error", "this one is 16-bit"),
    Case("nih-unknown-finding-option", "csv", _nih("a.png,Mass,10,10,50,50\n", finding="Masses"), "error",
         r"unknown finding 'Masses'.*'Atelectasis'", names=False),
    Case("vindr-missing-column", "csv", _vindr("image_id,class_name,x_min,y_min,x_max,y_max\na,No finding,,,,\n"),
         "error", r"lacks the column\(s\) \['rad_id'\]"),
    Case("vindr-reversed-box", "csv", _vindr(VINDR_HEADER + "a,Cardiomegaly,3,R1,50,50,40,60\nb,No finding,14,R2,,,,\n"),
         "error", "zero or negative size"),
    Case("vindr-box-outside-image", "csv", _vindr(VINDR_HEADER + "a,Cardiomegaly,3,R1,500,500,600,600\n"
                                                  "b,No finding,14,R2,,,,\n"), "error", "lies entirely outside"),
    Case("vindr-label-without-image", "csv", _vindr(VINDR_HEADER + "a,Cardiomegaly,3,R1,10,10,40,40\n"
                                                    "b,No finding,14,R2,,,,\nghost,No finding,14,R2,,,,\n"), "skip",
         "label rows without an image file"),
    Case("chexlocalize-rle-size-mismatch", "csv", _chexlocalize(rle_shape=(50, 60)), "error",
         "its RLE is 50×60 but the image view1_frontal.jpg is 60×50"),
    Case("chexlocalize-segmentation-without-image", "csv", _chexlocalize(extra_id="patient9_study1_view1_frontal"),
         "skip", "segmentations without an image file"),
    Case("chexlocalize-not-json", "csv", _chexlocalize(text="{not json"), "error", "not valid JSON"),
    Case("chexlocalize-corrupt-rle-counts", "csv", _chexlocalize_edit(_corrupt_counts), "error", "cannot be decoded"),
    Case("chexlocalize-missing-pathology", "csv", _chexlocalize_edit(
        lambda d: d["patient2_study1_view1_frontal"].pop("Edema")), "error", "has no 'Edema' entry"),
    Case("nih-entries-renamed-column", "csv", _nih_entries("Image,Labels\na.png,Mass\n"), "error",
         r"lacks the column\(s\) \['Image Index', 'Finding Labels'\]"),
    # -- checkpoints ------------------------------------------------------------------------------------------
    Case("checkpoint-other-architecture", "checkpoint", _checkpoint(_state_dict_of("densenet_tiny")), "error",
         "pass arch=|architecture"),
    Case("checkpoint-truncated", "checkpoint", _checkpoint(_truncate(0.4)), "error", "corrupt or truncated"),
    Case("checkpoint-pickle-with-code", "checkpoint", _checkpoint(_pickle_code), "error",
         "refused|not allowed|unsafe|weights_only|code"),
    Case("checkpoint-three-classes", "checkpoint", _checkpoint(num_classes=3), "error", "3 outputs"),
    Case("checkpoint-text-file", "checkpoint", _checkpoint(_text), "error", "corrupt"),
    # -- a researcher's own data (issue 27) ----------------------------------------------------------------------
    Case("folder-mask-transposed", "csv", _folder(), "error",
         r"its mask masks/film1\.png is 64×48 \(width×height\) but the film film1\.png is 48×64: the mask is transposed"),
    Case("folder-mask-other-size", "csv", _folder(mask_shape=(32, 24)), "error",
         r"its mask masks/film1\.png is 24×32 .* but the film film1\.png is 48×64: a mask must have its film's exact pixel size"),
    Case("folder-film-almost-black", "csv", _folder(mask_shape=(48, 64), film_shape=(48, 64),
                                                    film=np.full((48, 64), 12, np.uint8)), "ok",
         warns=r"^warning: film1\.png: the film is almost black"),
    Case("png-16-bit-holding-12-bit", "image", _png16("deep12.png", 4096), "ok", check=_check_used_depth(12, 4096),
         warns=r"^warning: 1 film\(s\) read at a depth inferred .*deep12\.png: a 16-bit image whose values all stay "
               r"below 4096 \(max \d+\): read as 12-bit"),
    Case("png-16-bit-declaring-12-bit", "image", _png16("sbit12.png", 4096, sbit=12), "ok",
         check=_check_used_depth(12, 4096)),
    # the PNG standard's own way: 12-bit samples scaled to 16 bits, sBIT 12 only informative (÷ 65535)
    Case("png-16-bit-declaring-12-bit-scaled", "image", _png16("sbit12s.png", 4096, sbit=12, scaled=True), "ok",
         check=_check_used_depth(12, 4096)),
    Case("checkpoint-torchscript", "checkpoint", _checkpoint(_torchscript), "error",
         r"TorchScript archive \(torch\.jit\.save\).*torch\.save\(torch\.jit\.load\(p\)\.state_dict\(\), "),
    Case("checkpoint-safetensors-alone", "checkpoint", _checkpoint(_safetensors, name="model.safetensors"), "error",
         "safetensors weights file: it does not say its architecture"),
    Case("checkpoint-chexnet-pth-tar", "checkpoint", _chexnet_pth_tar, "ok", check=_check_chexnet),
    Case("checkpoint-xrv-pretrained-state-dict", "checkpoint", _xrv("xrv"), "ok", check=_check_xrv),
    Case("checkpoint-xrv-unit-normalization", "checkpoint", _xrv("unit"), "ok", check=_check_xrv,
         warns=r"^warning: model .*xrv-unit\.toml: normalization 'unit' gives inputs in \[0, 1\], but torchxrayvision's "
               r"models are trained on one channel in \[-1024, 1024\]"),
    Case("nih-finding-infiltration", "csv", _nih("a.png,Infiltrate,10,10,50,50\n", finding="Infiltration"), "error",
         r"unknown finding 'Infiltration' \(did you mean 'Infiltrate'\? NIH's box list calls Data_Entry's "
         r"'Infiltration' 'Infiltrate'\)", names=False),
    Case("chexlocalize-finding-lung-opacity", "csv", _with_finding(_chexlocalize(), "Lung Opacity"), "error",
         r"unknown finding 'Lung Opacity' \(did you mean 'Airspace Opacity'\?", names=False),
    Case("config-out-is-a-file", "config", _occupy("out"), "error", r"^--out .*/out is a file, not a folder",
         names=False),
    Case("config-out-under-a-file", "config", _occupy("notes.txt", args=("--out", "{parent}/notes.txt/maps")),
         "error", r"^--out .*/notes\.txt/maps cannot be created: .*/notes\.txt is a file, not a folder", names=False),
    Case("config-out-read-only", "config", _config("--out", "/proc/trust-maps"), "error",
         r"^--out /proc/trust-maps is not writable: /proc refuses new files", names=False),
    Case("config-cache-is-a-file", "config", _occupy("cache"), "error",
         r"^the cache folder \(--cache, or \$TRUST_CACHE\) .*/cache is a file, not a folder", names=False),
    # -- configuration --------------------------------------------------------------------------------------
    Case("config-unknown-method", "config", _config("--methods", "grad", "lime"), "error",
         r"--methods: invalid choice: 'lime' \(choose from 'grad', 'smoothgrad'", names=False),
    Case("config-unknown-preset", "config", _config("--preset", "arun2022"), "error",
         r"--preset: invalid choice: 'arun2022' \(choose from 'arun2021', 'fast'\)", names=False),
    Case("config-zero-samples", "config", _config("--set", "n_samples=0"), "error", "n_samples", names=False),
    Case("config-negative-noise", "config", _config("--set", "noise_spread=-0.1"), "error", "noise_spread",
         names=False),
    Case("config-unknown-parameter", "config", _config("--set", "temperature=2"), "error", "unknown saliency parameter",
         names=False),
    Case("config-target-out-of-range", "config", _config("--set", "target=7"), "error", "out of range",
         names=False),
    Case("config-bad-dataset-spec", "config", _config("--dataset", "pacs:/nowhere"), "error", "KIND:PATH",
         names=False),
    Case("config-negative-limit", "config", _config("--limit", "-1"), "error", "--limit: must be > 0, got -1",
         names=False),
    Case("config-zero-group", "config", _config("--group", "0"), "error", "--group: must be > 0", names=False),
    Case("config-non-integer-batch", "config", _config("--batch-size", "2.5"), "error",
         "--batch-size: expected an integer", names=False),
    Case("config-unknown-rsna-class", "config", _config("--classes", "Pneumonia,Normal"), "error",
         "unknown RSNA class.*Pneumonia.*No Lung Opacity / Not Normal", names=False),
    Case("config-unknown-gradcam-upsampling", "config", _config("--set", "gradcam_interpolation=lanczos"), "error",
         "gradcam_interpolation must be one of", names=False),
    Case("config-unknown-xrai-postprocess", "config", _config("--set", "xrai_postprocess=sqrt"), "error",
         "xrai_postprocess must be one of", names=False),
]
