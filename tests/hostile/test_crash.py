"""Crash safety and concurrency, with real processes and real SIGKILLs.

- ``kill -9`` of a process writing to the cache, at random moments: the store stays consistent, every
  entry present is whole, and a rerun completes to exactly the clean result.
- ``kill -9`` in the middle of writing a report, a cohort ZIP or an evaluation's outputs (fault points
  in ``trust_core.io``): the previous file is intact or there is none, never half a file; the rerun
  writes the whole file and clears the dead process's temporary file.
- Two app sessions and one CLI run asking for the same maps at once: every map is computed exactly
  once (the others wait on its claim), and all three get identical maps.
(``kill -9`` of a whole evaluation and its resume: tests/evaluate/test_evaluate.py.)
"""
from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from trust_core.cache import Store

ROOT = Path(__file__).resolve().parents[2]
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}

WRITER = """
import hashlib, sys
import numpy as np
from trust_core.cache import Store
store = Store(sys.argv[1])
for k in range(int(sys.argv[2])):
    data = np.random.default_rng(k).standard_normal(50_000).astype(np.float32)  # 200 kB: stored as a file
    store.add(f"entry-{k}", {"data": data, "sha": hashlib.sha256(data.tobytes()).hexdigest()})
print("done")
"""
N_ENTRIES = 300


def _expected(k: int) -> str:
    data = np.random.default_rng(k).standard_normal(50_000).astype(np.float32)
    return hashlib.sha256(data.tobytes()).hexdigest()


def _entries(path: Path) -> dict[str, str]:
    with Store(path) as store:
        assert store.integrity() == []
        out = {}
        for k in range(N_ENTRIES):
            value = store.get(f"entry-{k}")
            if value is not None:
                assert hashlib.sha256(value["data"].tobytes()).hexdigest() == value["sha"] == _expected(k), k
                out[f"entry-{k}"] = value["sha"]
        return out


def test_kill_9_during_cache_writes(tmp_path):
    """SIGKILL the writer while it streams entries, four times, at growing fill levels and random delays."""
    store = tmp_path / "store"
    rng = random.Random(7)
    for threshold in (20, 80, 140, 200):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(N_ENTRIES)], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if (store / "cache.db").exists() and len(Store(store)) >= threshold:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.03))
        assert proc.poll() is None, "the writer finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert threshold <= len(_entries(store)) < N_ENTRIES  # consistent; every entry present is whole
    done = subprocess.run([sys.executable, "-c", WRITER, str(store), str(N_ENTRIES)], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _entries(store) == {f"entry-{k}": _expected(k) for k in range(N_ENTRIES)}


def _trust(*args, fault: str | None = None, timeout=600):
    env = {**ENV, **({"TRUST_FAULT": fault} if fault else {})}
    return subprocess.run([sys.executable, "-m", "trust_core.cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("fault", ["mid-write", "before-replace"])
def test_kill_9_during_report_export(app_workspace, tmp_path, fault):
    from trust_core.workspace import Workspace

    ws = Workspace(app_workspace)
    image_id = ws.dataset("rsna").ids(split="test", label=1)[0]
    model = ws.classifiers("rsna")[0]
    pdf, archive = tmp_path / "report.pdf", tmp_path / "cohort.zip"
    args = ["report", "--workspace", app_workspace, "--dataset", "rsna", "--image", image_id, "--model", model,
            "--preset", "fast"]
    # no previous file: a killed export leaves none (only the dead process's hidden temporary file)
    killed = _trust(*args, "--out", pdf, fault=fault)
    assert killed.returncode == -signal.SIGKILL
    assert not pdf.exists() and len(list(tmp_path.glob(".report.pdf.*.tmp"))) == 1
    first = _trust(*args, "--out", pdf)
    assert first.returncode == 0, first.stderr[-2000:]
    whole = pdf.read_bytes()
    assert whole.startswith(b"%PDF") and whole.rstrip().endswith(b"%%EOF")
    assert not list(tmp_path.glob(".report.pdf.*.tmp"))  # the dead process's temporary file is gone
    # a previous file: a killed export leaves it untouched
    killed = _trust(*args, "--out", pdf, fault=fault)
    assert killed.returncode == -signal.SIGKILL and pdf.read_bytes() == whole
    # the cohort archive goes through the same atomic write (both faults and a missing previous file are
    # shown on the PDF above): killed once, before the replace, with a previous archive (each export draws
    # every figure; a whole export of it is tests/report/test_report.py::test_cohort_archive_and_cli)
    if fault == "mid-write":
        return
    cohort = ["report", "--workspace", app_workspace, "--dataset", "rsna", "--cohort", "--out", archive]
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("rsna/summary.json", "{}")
    previous = archive.read_bytes()
    assert _trust(*cohort, fault=fault).returncode == -signal.SIGKILL and archive.read_bytes() == previous


def _evaluation_args(app_workspace, store: Path) -> list:
    models = [app_workspace / "models" / "rsna_densenet_tiny_s0.pt"]
    return ["evaluate", "--dataset", f"rsna:{app_workspace / 'rsna'}", "--model", *models, "--preset", "fast",
            "--methods", "grad", "gbp", "--criteria", "utility", "randomization", "--limit", "3",
            "--ssim-images", "2", "--baseline-pairs", "2", "--cache", store, "--set=n_samples=2"]


@pytest.fixture(scope="module")
def evaluated(app_workspace, tmp_path_factory):
    """One evaluation's results folder and its store, made once (each fault's test starts from a copy); a
    second run into it is refused without --overwrite."""
    root = tmp_path_factory.mktemp("evaluated")
    out = root / "results" / "rsna"  # a workspace layout: what the app reads
    assert _trust(*_evaluation_args(app_workspace, root / "store"), "--out", out).returncode == 0
    refused = _trust(*_evaluation_args(app_workspace, root / "store"), "--out", out)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    return root


@pytest.mark.parametrize("fault", ["before-replace", "mid-write", "before-swap"])
def test_kill_9_while_writing_evaluation_outputs(app_workspace, evaluated, tmp_path, fault):
    """Outputs are written into a hidden folder beside --out and swapped in whole: a rerun killed while it
    writes (a table half-written, a table whole but not renamed, the set whole but not swapped in) leaves the
    previous results untouched, and the next run clears the dead process's folder."""
    import shutil

    import pandas as pd

    shutil.copytree(evaluated / "results", tmp_path / "results")
    args = _evaluation_args(app_workspace, tmp_path / "store")
    shutil.copytree(evaluated / "store", tmp_path / "store")
    out = tmp_path / "results" / "rsna"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    killed = _trust(*args, "--out", out, "--overwrite", fault=fault)  # a rerun killed while it writes the outputs
    assert killed.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous results, whole and alone
    left = [p for p in out.parent.iterdir() if p.name.startswith(".rsna.")]
    assert len(left) == 1 and left[0].is_dir()  # only the dead process's hidden folder
    for path in left[0].iterdir():  # …in which every file that is there is whole
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
    from trust_core.workspace import Workspace
    assert Workspace(tmp_path).results("rsna") == json.loads(before["summary.json"])
    done = _trust(*args, "--out", out, "--overwrite")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["criteria"] == json.loads(before["summary.json"])["criteria"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")] and not list(out.glob(".*.tmp"))


def test_two_sessions_and_a_cli_run_compute_each_map_once(app_workspace, tmp_path):
    """Two app sessions (threads sharing the app's one Workspace, as st.cache_resource makes them) and a
    `trust maps` process ask for the same maps at once, on one cache."""
    import shutil

    from trust_core.workspace import Workspace

    root = tmp_path / "ws"
    for part in ("rsna", "models"):
        shutil.copytree(app_workspace / part, root / part)
    ws = Workspace(root)
    model = ws.classifiers("rsna")[0]
    ids = ws.dataset("rsna").ids(split="test")[:6]
    methods = ["grad", "smoothgrad", "ig", "gradcam"]
    light = {"n_samples": 12, "ig_steps": 24}
    cli = subprocess.Popen([sys.executable, "-m", "trust_core.cli", "maps", "--dataset", f"rsna:{root / 'rsna'}",
                            "--model", root / "models" / model, "--methods", *methods, "--preset", "fast",
                            "--images", *ids, "--group", "2", "--out", tmp_path / "maps", "--cache", root / "store",
                            *[f"--set={k}={v}" for k, v in light.items()]],
                           env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claims = root / "store" / "claims"
    deadline = time.time() + 120
    while time.time() < deadline and cli.poll() is None:  # start the sessions while the CLI is computing
        if claims.is_dir() and len(Store(root / "store")._claims) > 0:
            break
        time.sleep(0.02)
    sessions: list = [None, None]

    def session(k):
        sessions[k] = ws.maps("rsna", ids, model, methods=methods, preset="fast", **light)
    threads = [threading.Thread(target=session, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    out, err = cli.communicate(timeout=300)
    assert cli.returncode == 0, err[-2000:]
    cli_computed = int(out.split("maps computed")[0].rsplit(":", 1)[1])
    session_computed = [sum(not hit for flags in s.from_cache.values() for hit in flags) for s in sessions]
    assert cli_computed + sum(session_computed) == len(ids) * len(methods), (cli_computed, session_computed)
    assert cli_computed > 0  # the CLI was really computing while the sessions asked
    for image_id, j in zip(ids, range(len(ids))):
        with np.load(tmp_path / "maps" / f"{image_id}.npz") as saved:
            for m in methods:
                for s in sessions:
                    np.testing.assert_array_equal(s[m][j], saved[m])
    with Store(root / "store") as store:
        assert store.integrity() == [] and len(store) == len(ids) * len(methods)
        assert len(store._claims) == 0  # every claim released
