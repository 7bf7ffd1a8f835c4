"""Pseudonyms are keyed: HMAC-SHA256 with a secret per-workspace key, not an unkeyed hash of the image id.

Image ids are public (RSNA's patientId list, SIIM's ImageIds): an unkeyed hash of them is reversed by
hashing the list once. Shown here: the pseudonyms in reports, the cohort ZIP and the app are
``img-`` + 10 hex digits of HMAC-SHA256(key, id), checked against the standard library's ``hmac`` on the key
file's own bytes; a dictionary attack with every id recovers nothing; the key is 32 random bytes in
``<workspace>/pseudonym.key``, made once with mode 0600 (of racing creators one wins) and never rewritten; it
is stable across processes and differs between workspaces; no report, archive or export holds it; a key
that cannot be read or made is a clear error, never a fallback to the unkeyed hash.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from trust_core.cli import main
from trust_core.errors import ConfigError
from trust_core.layout import Layout
from trust_core.pseudonyms import pseudonym, pseudonymizer, workspace_key
from trust_core.report import cohort_archive
from trust_core.workspace import Workspace

from .test_privacy import _texts

ROOT = Path(__file__).resolve().parents[2]
MODEL = "rsna_densenet_tiny_s0.pt"


def oracle(key: bytes, image_id: str) -> str:
    """The pseudonym computed independently: the standard library's HMAC-SHA256 over the key file's bytes."""
    return "img-" + hmac.new(key, image_id.encode(), hashlib.sha256).hexdigest()[:10]


def unkeyed(image_id: str) -> str:
    """The old, reversible pseudonym: an unkeyed SHA-256 prefix."""
    return "img-" + hashlib.sha256(image_id.encode()).hexdigest()[:10]


def key_bytes(root) -> bytes:
    return (Path(root) / "pseudonym.key").read_bytes()


@pytest.fixture
def results_workspace(app_workspace, tmp_path):
    """A fresh workspace (no key yet) holding a copy of the app workspace's RSNA results."""
    root = tmp_path / "ws"
    shutil.copytree(app_workspace / "results" / "rsna", root / "results" / "rsna")
    return root


def _all_ids(app_workspace) -> list[str]:
    """Every image id an attacker could list: the dataset's and every id in the results tables."""
    ids = set(Workspace(app_workspace).dataset("rsna", classes="all").ids())
    for path in (app_workspace / "results" / "rsna").glob("*.parquet"):
        table = pd.read_parquet(path)
        if "image_id" in table:
            ids |= set(table.image_id.astype(str))
    return sorted(ids)


def _archive_ids(data: bytes) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return set(pd.read_csv(io.BytesIO(archive.read("rsna/utility.csv"))).image_id.astype(str))


def test_pseudonyms_are_keyed_and_a_dictionary_attack_recovers_nothing(app_workspace, results_workspace):
    ids = _all_ids(app_workspace)
    assert len(ids) >= 20
    # an id inside a JSON file too (a film skipped as unreadable is listed by its id in summary.json)
    summary_path = results_workspace / "results" / "rsna" / "summary.json"
    summary = json.loads(summary_path.read_text())
    first = sorted(pd.read_parquet(results_workspace / "results" / "rsna" / "utility.parquet").image_id.astype(str))[0]
    summary["dataset"]["unreadable"] = {first: "its DICOM is truncated"}
    summary_path.write_text(json.dumps(summary))
    # (the figures hold no image id: test_the_key_reaches_no_report_archive_or_export reads them)
    archive = cohort_archive(Workspace(results_workspace), "rsna", figures=False)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        listed = json.loads(opened.read("rsna/summary.json"))["dataset"]["unreadable"]
    assert list(listed) == [pseudonymizer(results_workspace)(first)]
    shown = _archive_ids(archive)
    key = key_bytes(results_workspace)
    originals = set(pd.read_parquet(results_workspace / "results" / "rsna" / "utility.parquet").image_id.astype(str))
    # (b) the archive's names are HMAC-SHA256(key, id), as the standard library computes it from the file
    assert shown == {oracle(key, i) for i in originals}
    name = pseudonymizer(results_workspace)
    for image_id in ids:
        assert pseudonym(image_id, results_workspace) == name(image_id) == oracle(key, image_id)
        assert len(name(image_id)) == 14 and name(image_id).startswith("img-")  # the visible format kept
        int(name(image_id)[4:], 16)
    # (a) not the unkeyed hash, and hashing the whole id list (the attack) recovers nothing
    table = {unkeyed(i): i for i in ids}
    assert not [p for p in shown if p in table]
    assert all(name(i) != unkeyed(i) for i in ids)
    # the attack itself works: on unkeyed pseudonyms it recovers every id
    assert {table[unkeyed(i)] for i in originals} == originals
    # the archive holds no id either
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        text = "".join(opened.read(m).decode("latin-1") for m in opened.namelist())
    assert not [i for i in originals if i in text]


PRINT = ("import json, sys; from trust_core.pseudonyms import pseudonymizer; name = pseudonymizer(sys.argv[1]); "
         "print(json.dumps([name(i) for i in sys.argv[2:]]))")


def _in_fresh_process(root, ids) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PRINT, str(root), *ids], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={k: v for k, v in os.environ.items() if k != "TRUST_WORKSPACE"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_stable_across_processes_and_different_across_workspaces(tmp_path):
    ids = ["0004cfab-14fd-4e49-80ba-63a80b6bddd6", "1.2.276.0.7230010.3.1.4.8323329.1000", "patient-42"]
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    first = _in_fresh_process(one, ids)  # creates one's key
    created = os.stat(one / "pseudonym.key")
    assert _in_fresh_process(one, ids) == first  # another process, the same workspace: the same names
    assert [pseudonym(i, one) for i in ids] == first  # and this process (the app, the CLI) too
    other = _in_fresh_process(two, ids)
    assert all(a != b for a, b in zip(first, other))  # another workspace: another key, other names
    # one process using both workspaces keeps them apart (no key shared between workspaces)
    assert [pseudonym(i, two) for i in ids] == other and [pseudonym(i, one) for i in ids] == first
    assert key_bytes(one) != key_bytes(two)
    assert first == [oracle(key_bytes(one), i) for i in ids] and other == [oracle(key_bytes(two), i) for i in ids]
    after = os.stat(one / "pseudonym.key")
    assert (after.st_ino, after.st_mtime_ns) == (created.st_ino, created.st_mtime_ns)  # read, never rewritten


def test_the_key_is_created_once_with_mode_0600_and_never_rewritten(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    names, barrier = [], threading.Barrier(8)

    def race():
        barrier.wait()
        names.append(pseudonym("patient-7", root))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(names)) == 1  # of the racing creators one won, and every one uses its key
    path = Layout(root).pseudonym_key
    info = os.stat(path)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_size == 32
    assert sorted(p.name for p in root.iterdir()) == ["pseudonym.key"]  # no temporary left behind
    key = path.read_bytes()
    assert names[0] == oracle(key, "patient-7")
    for _ in range(3):
        workspace_key(root), pseudonymizer(Workspace(root))("x"), pseudonym("y", Layout(root))
    again = os.stat(path)
    assert (again.st_ino, again.st_mtime_ns, again.st_size) == (info.st_ino, info.st_mtime_ns, info.st_size)
    assert path.read_bytes() == key


def test_the_key_reaches_no_report_archive_or_export(app_workspace, tmp_path, capsys):
    ws = Workspace(app_workspace)
    image_id = ws.dataset("rsna").ids(split="test", label=1)[0]
    exports = {}
    for out in ("report.html", "report.pdf", "cohort.zip"):
        target = tmp_path / out
        args = ["--cohort"] if out.endswith(".zip") else ["--image", image_id, "--model", MODEL]
        assert main(["report", "--workspace", str(app_workspace), "--dataset", "rsna", *args,
                     "--out", str(target)]) == 0, capsys.readouterr().err
        exports[out] = target.read_bytes()
    printed = capsys.readouterr()
    key = key_bytes(app_workspace)
    # the CLI names the image as the key file says (the app's pages use the same workspace key)
    assert oracle(key, image_id) in exports["report.html"].decode() and image_id not in printed.out
    assert oracle(key, image_id) in printed.out
    needles = [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), "pseudonym.key", "pseudonym_key"]
    for name, data in exports.items():
        assert key not in data, name
        for where, text in _texts(name, data):
            assert not [n for n in needles if n.lower() in text.lower()], where
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                assert not [m for m in archive.namelist() if "pseudonym" in m or "key" in m.lower()]
                assert all(key not in archive.read(m) for m in archive.namelist())
    assert not [n for n in needles if n in printed.out + printed.err]


def test_an_unusable_key_is_a_clear_error_never_an_unkeyed_fallback(results_workspace, tmp_path, capsys,
                                                                      monkeypatch):
    path = Layout(results_workspace).pseudonym_key
    # damaged (a key of the wrong length): refused, naming the file and the fix; no archive is made
    path.write_bytes(b"short")
    os.utime(path, (0, 0))
    with pytest.raises(ConfigError, match="pseudonym.key.*damaged.*restore it"):
        cohort_archive(Workspace(results_workspace), "rsna")
    assert main(["report", "--workspace", str(results_workspace), "--dataset", "rsna", "--cohort",
                 "--out", str(tmp_path / "c.zip")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and not (tmp_path / "c.zip").exists()
    # unreadable (here: a folder where the key should be)
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        pseudonym("patient-1", results_workspace)
    assert str(path) in str(caught.value)
    path.rmdir()
    # cannot be created (the folder is not writable for this user): the error names the file and the fix
    import trust_core.pseudonyms as pseudonyms

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pseudonyms, "create_once", refuse)
    with pytest.raises(ConfigError, match="cannot create .*pseudonym.key.*writable") as caught:
        pseudonym("patient-1", results_workspace)
    assert str(path) in str(caught.value)
    with pytest.raises(ConfigError, match="does not exist"):
        pseudonym("patient-1", tmp_path / "missing")
    assert not (tmp_path / "missing").exists()  # nothing made up


def test_app_messages_stay_redacted_without_a_usable_key(app_workspace, tmp_path, monkeypatch):
    """The app's error messages name images by pseudonym; with a broken key they drop the id and say why."""
    import ui.state
    from ui.frame import redact

    root = tmp_path / "ws"
    shutil.copytree(app_workspace / "rsna", root / "rsna")
    ws = Workspace(root)
    image = ws.dataset("rsna").ids()[0]
    monkeypatch.setattr(ui.state, "workspace", lambda: ws)
    monkeypatch.setattr(ui.state, "kind", lambda: "rsna")
    monkeypatch.setattr(ui.state, "shared", lambda name, default=None: False)
    message = f"cannot decode /data/rsna/stage_2_train_images/{image}.dcm: bad pixel data"
    assert redact(message) == message.replace(image, oracle(key_bytes(root), image))
    Layout(root).pseudonym_key.write_bytes(b"")
    os.utime(Layout(root).pseudonym_key, (0, 0))
    shown = redact(message)
    assert image not in shown and unkeyed(image) not in shown and "pseudonym.key" in shown
