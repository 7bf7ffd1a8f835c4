"""Privacy: identifiers planted in every identifying DICOM field of every image never reach a report,
an exported table, a log line, the app's pages or the cache — unless the user asks for them.

The workspace's DICOMs get a distinctive value in each field (name, ids, birth date, accession number,
institution, physicians, dates, station…); then everything a user can produce runs on it — `trust check`,
`trust maps`, `trust evaluate`, `trust report` (HTML, PDF, cohort ZIP), every page of the app — and
every byte written or printed is searched for every planted value (PDF streams inflated, ZIP, NPZ and
Parquet members opened), and for the workspace's secret pseudonym key. The search is shown to work: with
identifiers asked for, they are found.
Burned-in text in the pixels is out of scope (SECURITY.md).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import shutil
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from trust_core.cli import main

from ..app.test_pages import PAGES, start
from ..conftest import APP_LIGHT

PLANTED = {
    "PatientName": "Zebrafinch^Quillon", "PatientID": "PID-PLANTED-4417", "PatientBirthDate": "19380412",
    "OtherPatientIDs": "OPID-PLANTED-5521", "PatientAddress": "99 Plantedroad Avenue",
    "PatientTelephoneNumbers": "555-0199-7731", "AccessionNumber": "ACC-PLANTED-93",
    "InstitutionName": "Saint Plantedia Hospital", "InstitutionAddress": "17 Plantedlane Street",
    "ReferringPhysicianName": "Referrer^Plantedref", "PerformingPhysicianName": "Performer^Plantedperf",
    "OperatorsName": "Operator^Plantedop", "StudyDate": "20230917", "SeriesDate": "20230918",
    "AcquisitionDate": "20230919", "ContentDate": "20230920", "StudyID": "STUDY-PLANTED-8",
    "StationName": "PLANTEDSTATION", "DeviceSerialNumber": "SN-PLANTED-66",
}


def _needles() -> list[str]:
    """Every planted value, its name parts, and the dates as other tools would print them."""
    out = set()
    for value in PLANTED.values():
        out.add(value)
        out.update(part for part in re.split(r"[\^ ]", value) if len(part) >= 6 and not part.isdigit())
    for key in ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        d = PLANTED[key]
        out.update({f"{d[:4]}-{d[4:6]}-{d[6:]}", f"{d[6:]}/{d[4:6]}/{d[:4]}", f"{d[4:6]}/{d[6:]}/{d[:4]}"})
    return sorted(out)


NEEDLES = _needles()


def _texts(name: str, data: bytes):
    """(where, text) pieces of a file, with containers opened and compressed streams inflated."""
    lower = name.lower()
    if lower.endswith((".zip", ".npz")):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield from _texts(f"{name}!{member}", archive.read(member))
        return
    if lower.endswith(".parquet"):
        yield name, pd.read_parquet(io.BytesIO(data)).to_csv()
    if lower.endswith(".pdf"):
        for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
            try:
                # a decompressobj: a stream whose last byte (a CR) the regex took as its line end still inflates
                yield name, zlib.decompressobj().decompress(stream).decode("latin-1")
            except zlib.error:
                pass
    text = data.decode("utf-8", "replace")
    # Embedded pictures are pixels, not text (base64 spells any short string by chance); the words stay.
    yield name, re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", text)
    if lower.endswith((".db", ".val", ".pkl")) or "." not in Path(name).name:
        yield name, data.decode("latin-1")


def _leaks(pieces, needles=NEEDLES) -> list[tuple[str, str]]:
    found = []
    lowered = [n.lower() for n in needles]
    for where, text in pieces:
        folded = text.lower()
        found += [(where, n) for n, low in zip(needles, lowered) if low in folded]
    return sorted(set(found))


def _files(*folders: Path):
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                yield from _texts(str(path), path.read_bytes())


@pytest.fixture(scope="module")
def planted_workspace(app_workspace, tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    shutil.copytree(app_workspace / "rsna", root / "rsna")
    shutil.copytree(app_workspace / "models", root / "models")
    uids = []
    for path in sorted((root / "rsna").rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        for key, value in PLANTED.items():
            setattr(ds, key, value)
        ds.save_as(path)
        uids += [str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)]
    return root, uids


def _run(capsys, *args) -> str:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    return out.out + out.err


def test_planted_identifiers_reach_no_output(planted_workspace, capsys, tmp_path):
    ws, uids = planted_workspace
    index = json.loads((ws / "models" / "index.json").read_text())["models"]
    classifiers = [ws / "models" / e["file"] for e in index if e["role"] != "localizer"]
    localizers = [ws / "models" / e["file"] for e in index if e["role"] == "localizer"]
    light = [f"--set={k}={v}" for k, v in APP_LIGHT.items()]
    dataset = f"rsna:{ws / 'rsna'}"
    logs = [_run(capsys, "check", "--dataset", dataset)]
    logs.append(_run(capsys, "maps", "--dataset", dataset, "--model", classifiers[0], "--preset", "fast",
                     "--positives", "--limit", "2", "--out", tmp_path / "maps", "--cache", ws / "store", *light))
    logs.append(_run(capsys, "evaluate", "--dataset", dataset, *sum((["--model", m] for m in classifiers), []),
                     *sum((["--localizer", m] for m in localizers), []), "--preset", "fast", "--limit", "3",
                     "--ssim-images", "3", "--baseline-pairs", "2", "--cache", ws / "store",
                     "--out", ws / "results" / "rsna", *light))
    image_id = pd.read_parquet(ws / "results" / "rsna" / "utility.parquet").image_id.iloc[0]
    model = classifiers[0].name
    exports = tmp_path / "exports"
    exports.mkdir()
    for out in ("report.pdf", "report.html"):
        logs.append(_run(capsys, "report", "--workspace", ws, "--dataset", "rsna", "--image", image_id,
                         "--model", model, "--out", exports / out))
    logs.append(_run(capsys, "report", "--workspace", ws, "--dataset", "rsna", "--cohort",
                     "--out", exports / "cohort.zip"))

    # the app: every page, every text element
    import os
    shown = []
    previous = os.environ.get("TRUST_WORKSPACE")
    try:
        from _pytest.monkeypatch import MonkeyPatch
        with MonkeyPatch.context() as mp:
            at = start(ws, mp)
            for page in PAGES:
                at.switch_page(page).run()
                assert not at.exception, (page, [e.value for e in at.exception])
                for kind in ("markdown", "caption", "title", "header", "subheader", "text", "info", "success",
                             "warning", "error", "json", "metric", "table", "dataframe", "code"):
                    for element in getattr(at, kind, []):
                        value = getattr(element, "value", None)
                        shown.append((f"app {page} {kind}", value.to_csv() if hasattr(value, "to_csv")
                                      else str(value)))
                for box in at.selectbox:
                    shown.append((f"app {page} selectbox", " ".join(map(str, box.options))))
    finally:
        if previous is not None:
            os.environ["TRUST_WORKSPACE"] = previous

    pieces = list(_files(ws / "results", ws / "store", tmp_path / "maps", exports))
    pieces += [("logs", text) for text in logs] + shown
    assert len(pieces) > 50
    assert _leaks(pieces, NEEDLES + uids) == []
    # the cohort export names images by pseudonym only: keyed with the workspace's secret key (HMAC-SHA256),
    # not the unkeyed hash anyone holding the id list could reverse; the key itself reaches no output
    with zipfile.ZipFile(exports / "cohort.zip") as archive:
        text = "".join(archive.read(m).decode("latin-1") for m in archive.namelist())
    key = (ws / "pseudonym.key").read_bytes()
    keyed = "img-" + hmac.new(key, image_id.encode(), hashlib.sha256).hexdigest()[:10]
    assert image_id not in text and keyed in text
    assert "img-" + hashlib.sha256(image_id.encode()).hexdigest()[:10] not in text
    assert _leaks(pieces, [key.hex(), base64.b64encode(key).decode(), "pseudonym.key"]) == []

    # the search works: the planted values are in the DICOMs, and in exports that ask for identifiers
    assert _leaks(_files(ws / "rsna"))
    _run(capsys, "report", "--workspace", ws, "--dataset", "rsna", "--image", image_id, "--model", model,
         "--out", tmp_path / "named.html", "--include-identifiers")
    named = {n for _, n in _leaks(_texts("named.html", (tmp_path / "named.html").read_bytes()))}
    assert {PLANTED["PatientName"], PLANTED["PatientID"], PLANTED["AccessionNumber"],
            PLANTED["InstitutionName"]} <= named
    _run(capsys, "report", "--workspace", ws, "--dataset", "rsna", "--cohort", "--out", tmp_path / "named.zip",
         "--include-identifiers")
    with zipfile.ZipFile(tmp_path / "named.zip") as archive:
        assert image_id in archive.read("rsna/utility.csv").decode()
