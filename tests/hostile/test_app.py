"""The hostile corpus in the real app (Streamlit AppTest): a message a clinician can act on, never a
traceback, and the app keeps running.

- every DICOM and image case uploaded on the "Your own image" page;
- workspaces with a broken label file, a broken model index, a checkpoint that is not a model and a
  folder outside the configured roots, on every page.
"""
from __future__ import annotations

import json
import re
import shutil

import pytest
from streamlit import config as st_config

from ..app.test_pages import PAGES, start
from .corpus import CASES, _rsna, _text

UPLOADS = [c for c in CASES if c.category in ("dicom", "image")]


@pytest.mark.parametrize("case", UPLOADS, ids=[c.id for c in UPLOADS])
def test_upload_page(case, app_workspace, monkeypatch, tmp_path):
    info = case.build(tmp_path)
    name = case.extra.get("name", info["file"].name)
    data = info["file"].read_bytes()
    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/upload.py").run()
    if "max_bytes" in case.extra:  # the page re-checks the server's limit (1 MB here)
        previous = st_config.get_option("server.maxUploadSize")
        st_config.set_option("server.maxUploadSize", 1)
        data = b"\0" * (2 * 2**20)
    try:
        at.file_uploader[0].upload(name, data).run()
    finally:
        if "max_bytes" in case.extra:
            st_config.set_option("server.maxUploadSize", previous)
    assert not at.exception, [e.value for e in at.exception]
    if case.expect == "error":
        messages = [e.value for e in at.error]
        base = name.rsplit("/", 1)[-1]  # a file's name is often a patient id: "the uploaded file" unless asked
        assert any(re.search(case.match.replace(re.escape(base), "the uploaded file").replace(base, "the uploaded file"), m)
                   and "the uploaded file" in m and base not in m for m in messages), messages
    else:
        assert not at.error, [e.value for e in at.error]
        assert any("Maps explain class" in s.value for s in at.success)


def _workspace(tmp_path, app_workspace):
    """A copy of the app workspace's models (index and checkpoints) with its own dataset folder."""
    root = tmp_path / "ws"
    shutil.copytree(app_workspace / "models", root / "models")
    return root


def _sweep(at):
    """Visit every page; return the error messages shown (no page may raise)."""
    shown = []
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        shown += [e.value for e in at.error]
    return shown


def test_broken_label_file_in_workspace(app_workspace, monkeypatch, tmp_path):
    root = _workspace(tmp_path, app_workspace)
    _rsna("patient,x,y,w,h,label\na,1,1,5,5,1\n")(root / "rsna")
    at = start(root, monkeypatch)
    shown = _sweep(at)
    assert any("stage_2_train_labels.csv" in m and "lacks the column" in m for m in shown), shown


def test_corrupt_model_index(app_workspace, monkeypatch, tmp_path):
    root = _workspace(tmp_path, app_workspace)
    shutil.copytree(app_workspace / "rsna", root / "rsna")
    (root / "models" / "index.json").write_text('{"models": [')
    at = start(root, monkeypatch)
    shown = _sweep(at)
    assert any("index.json" in m for m in shown), shown


def test_checkpoint_that_is_not_a_model(app_workspace, monkeypatch, tmp_path):
    root = _workspace(tmp_path, app_workspace)
    shutil.copytree(app_workspace / "rsna", root / "rsna")
    index = json.loads((root / "models" / "index.json").read_text())
    first = next(e for e in index["models"] if e["dataset"] == "rsna" and e["role"] == "replicate A")
    _text(root / "models" / first["file"])
    at = start(root, monkeypatch)
    shown = _sweep(at)
    assert any(first["file"] in m and "corrupt" in m for m in shown), shown


def _choose_workspace(at, folder):
    """What typing a folder in the sidebar does (the widget stores it as the shared choice); then rerun
    through app.py's frame, as a fresh page load does (AppTest reruns a page file on its own)."""
    at.session_state["_workspace"] = str(folder)
    at.session_state["_frame"] = False
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def test_workspace_outside_the_configured_roots(app_workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("TRUST_ROOTS", str(app_workspace))
    at = start(app_workspace, monkeypatch)
    for attempt in (f"{app_workspace}/../../..", "/etc", tmp_path):
        shown = _choose_workspace(at, attempt)
        assert any("outside the folders this app may read" in m for m in shown), (attempt, shown)
        assert at.sidebar.text_input(key="workspace") is not None  # the app keeps running
    # a link inside an allowed root that points out of it is refused too
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to("/etc")
    monkeypatch.setenv("TRUST_ROOTS", f"{app_workspace}:{tmp_path / 'inside'}")
    shown = _choose_workspace(at, tmp_path / "inside" / "link")
    assert any("outside the folders" in m for m in shown), shown
    assert _choose_workspace(at, app_workspace) == []
