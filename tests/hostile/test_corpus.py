"""Every case of the hostile-input corpus, through the library and through the real command line.

For each case: the reader gives the expected outcome (a project error naming the file and the problem,
a counted skip, or a correct value); ``trust maps`` on a dataset holding the input exits with status 2
and that message (no traceback) or succeeds and reports the skip; and nothing half-written is left: no
temporary files, every map file complete, the cache consistent and without an entry for the bad input.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import torch

from trust_core.cache import Store
from trust_core.cli import main
from trust_core.data import load_radiograph, open_dataset
from trust_core.data.images import read_upload
from trust_core.errors import TrustError
from trust_core.models import build, load, save

from ..helpers import write_dicom
from .corpus import CASES, RSNA_HEADER, _pixels, _rsna

UPLOAD_LIMIT = 64 * 2**20


def test_corpus_covers_every_kind_of_input():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    counts = Counter(c.category for c in CASES)
    assert {k: counts[k] >= 5 for k in ("dicom", "image", "csv", "checkpoint", "config")} == dict.fromkeys(
        ("dicom", "image", "csv", "checkpoint", "config"), True)
    assert {c.expect for c in CASES} == {"error", "skip", "ok"}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    return save(build("resnet_tiny"), folder / "tiny.pt", arch="resnet_tiny", meta={"input_size": 32})


@pytest.fixture(scope="module")
def good_rsna(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rsna")
    return _rsna(RSNA_HEADER + "a,1,1,20,20,1\nb,,,,,0\nc,5,5,30,30,1\n")(folder)


def _direct(case, info):
    """The library call a user's file meets first."""
    if case.category in ("dicom", "image"):
        data = info["file"].read_bytes()
        if case.upload_only:
            return read_upload(case.extra.get("name", info["file"].name), data,
                               max_bytes=case.extra.get("max_bytes", UPLOAD_LIMIT))
        value = load_radiograph(info["file"])
        np.testing.assert_array_equal(read_upload(info["file"].name, data, max_bytes=UPLOAD_LIMIT), value)
        return value
    if case.category == "csv":
        dataset = open_dataset(info["dataset"], image_size=32, split_file=source_of(info) / "splits.csv",
                               **info.get("open", {}))
        for image_id in dataset.ids():
            dataset.mask(image_id, 32)
            if info.get("images"):  # the multi-finding readers check their films too
                dataset.image(image_id, 32)
        return dataset
    if case.category == "checkpoint":
        return load(info.get("load", info["file"]), num_classes=2)  # as the CLI and the app load classifiers
    return None


def source_of(info):
    """The dataset folder of a csv case (its label file's folder, or the one above images/)."""
    from pathlib import Path

    return Path(info["dataset"].split(":", 1)[1])


def _cli_args(case, info, tmp_path, model_path, good_rsna):
    dataset, images, model = good_rsna["dataset"], ["a"], str(model_path)
    if case.category in ("dicom", "image"):
        folder = tmp_path / "folder"
        (folder / "images").mkdir(parents=True)
        write_dicom(folder / "images" / "good.dcm", _pixels())
        bad = info["file"]
        (folder / "images" / bad.name).write_bytes(bad.read_bytes())
        (folder / "labels.csv").write_text(f"image_id,label\ngood,1\n{bad.stem},1\n")
        dataset, images = f"folder:{folder}", ["good", bad.stem]
    elif case.category == "csv":  # labels and masks: `trust check` renders every ground truth
        return ["check", "--dataset", info["dataset"], *info.get("args", [])]
    elif case.category == "checkpoint":
        model = str(info["model"])
    args = ["maps", "--dataset", dataset, "--model", model, "--methods", "grad", "gbp", "--preset", "fast",
            "--images", *images, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    return args + info.get("args", [])


def _assert_nothing_half_written(tmp_path, case, info):
    out = tmp_path / "out"
    if out.is_dir():
        assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
        for npz in out.glob("*.npz"):
            with np.load(npz) as data:
                assert {"grad", "gbp", "target"} <= set(data.files)
        if case.expect == "error" and case.category in ("dicom", "image"):
            assert not (out / f"{info['file'].stem}.npz").exists()
    if (tmp_path / "cache").is_dir():
        with Store(tmp_path / "cache") as store:
            assert store.integrity() == []
            assert len(store) <= 4  # at most the good image's two maps (x2 when re-run)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case, tmp_path, model_path, good_rsna, capsys):
    source = tmp_path / "source"
    source.mkdir()
    info = case.build(source)
    # 1. the library
    if case.category != "config":
        if case.expect == "error":
            with pytest.raises(TrustError) as caught:
                _direct(case, info)
            message = str(caught.value)
            assert re.search(case.match, message), message
            if case.names:
                assert info["file"].name in message, message
        else:
            value = _direct(case, info)
            if case.check is not None:
                case.check(value)
            if case.expect == "skip":
                assert value.skipped.counts.get(case.match, 0) >= 1, value.skipped.counts
    if case.upload_only:
        return
    # 2. the command line (a bad film among good ones: `--strict` refuses it, the default skips and lists it)
    film = case.category in ("dicom", "image") and case.expect == "error"
    capsys.readouterr()
    args = _cli_args(case, info, tmp_path, model_path, good_rsna)
    code = main(args + (["--strict"] if film else []))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if case.expect == "error":
        assert code == 2, err
        line = re.search(r"^error: (.*)$", err, re.M)
        assert line and re.search(case.match, line.group(1)), err
        if case.names:
            assert info["file"].name in line.group(1), err
        assert not (tmp_path / "out").is_dir()  # refused before anything was written
    else:
        assert code == 0, err
        if case.expect == "skip":
            assert re.search(rf"note: skipped \d+ item\(s\) of .*: {re.escape(case.match)}", err), err
    if case.warns:
        assert re.search(case.warns, err, re.M), err
    _assert_nothing_half_written(tmp_path, case, info)
    if film:  # the run goes on without the film, says which and why, and records it
        before = info["file"].read_bytes()
        assert main(args) == 0
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert re.search(r"^note: skipped 1 item\(s\) of .*: unreadable films", err, re.M), err
        listed = re.search(rf"^  {re.escape(info['file'].stem)}: (.*)$", err, re.M)
        assert listed and re.search(case.match, listed.group(1)) and info["file"].name in listed.group(1), err
        params = __import__("json").loads((tmp_path / "out" / "params.json").read_text())
        assert params["skipped"] == {"unreadable films": 1} and list(params["unreadable"]) == [info["file"].stem]
        assert (tmp_path / "out" / "good.npz").exists() and info["file"].read_bytes() == before
        _assert_nothing_half_written(tmp_path, case, info)
    # 3. a checkpoint's pickle never ran code
    assert not (source / "PICKLE-CODE-RAN").exists()
