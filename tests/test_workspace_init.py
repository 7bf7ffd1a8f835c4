"""`trust workspace init` and `trust app --workspace`: a researcher's own dataset, models, results and cache
opened in the app, where the maps shown are the very maps the evaluation scored (one cache identity)."""
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from trust_core.cli import main
from trust_core.workspace import Workspace

from .conftest import APP_LIGHT


def _init_args(app_workspace, out, *extra):
    models = app_workspace / "models"
    return ["workspace", "init", "--dataset", f"rsna:{app_workspace / 'rsna'}",
            "--model", str(models / "rsna_densenet_tiny_s0.pt"), "--model", str(models / "rsna_densenet_tiny_s1.pt"),
            "--model", str(models / "rsna_resnet_tiny_s0.pt"), "--localizer", str(models / "rsna_unet_s0.pt"),
            "--localizer", str(models / "rsna_unet_s1.pt"), "--results", str(app_workspace / "results" / "rsna"),
            "--store", str(app_workspace / "store"), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def own_workspace(app_workspace, tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "ws"
    assert main(_init_args(app_workspace, out)) == 0
    return out


def test_init_links_the_data_copies_the_models_with_their_roles(own_workspace, app_workspace, capsys):
    ws = own_workspace
    assert (ws / "rsna").is_symlink() and (ws / "rsna").resolve() == (app_workspace / "rsna").resolve()
    assert (ws / "store").is_symlink()
    index = {e["file"]: e for e in json.loads((ws / "models" / "index.json").read_text())["models"]}
    assert {f: e["role"] for f, e in index.items()} == {
        "rsna_densenet_tiny_s0.pt": "replicate A", "rsna_densenet_tiny_s1.pt": "replicate B",
        "rsna_resnet_tiny_s0.pt": "other architecture", "rsna_unet_s0.pt": "localizer", "rsna_unet_s1.pt": "localizer"}
    assert (ws / "results" / "rsna" / "summary.json").read_bytes() == (
        app_workspace / "results" / "rsna" / "summary.json").read_bytes()
    opened = Workspace(ws)
    assert opened.kinds == ["rsna"] and opened.classifiers("rsna")[0] == "rsna_densenet_tiny_s0.pt"
    assert opened.results("rsna")["criteria"]


def test_the_app_shows_the_maps_the_evaluation_scored(own_workspace):
    """Every utility image of the main model, and the fully randomized state's maps, come from the evaluation's
    cache: no pass is run, and the AUPRC of the map shown is the one in utility.parquet."""
    from trust_core.metrics import auprc

    ws = Workspace(own_workspace)
    utility = pd.read_parquet(own_workspace / "results" / "rsna" / "utility.parquet")
    ids = sorted(set(utility.image_id))
    shown = ws.maps("rsna", ids, "rsna_densenet_tiny_s0.pt", preset="fast", **APP_LIGHT)
    assert shown.passes == 0 and all(all(v) for v in shown.from_cache.values())
    dataset = ws.dataset("rsna")
    for k, image_id in enumerate(ids[:4]):
        stored = utility[(utility.image_id == image_id) & (utility.method == "gradcam")].auprc.iloc[0]
        assert auprc(shown["gradcam"][k], dataset.mask(image_id, shown["gradcam"].shape[-1])) == stored
    randomization = pd.read_parquet(own_workspace / "results" / "rsna" / "randomization.parquet")
    last = randomization[randomization.state_index == randomization.state_index.max()]
    state, image = last.state.iloc[0], sorted(set(last.image_id))[:2]
    cascade = ws.maps("rsna", image, "rsna_densenet_tiny_s0.pt", preset="fast", state=state, **APP_LIGHT)
    assert cascade.passes == 0 and all(all(v) for v in cascade.from_cache.values())


def test_init_refuses_what_it_cannot_use(app_workspace, tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert main(_init_args(app_workspace, full)) == 2
    assert "is not empty: a workspace is made in a new or empty folder" in capsys.readouterr().err
    args = _init_args(app_workspace, tmp_path / "a")
    args[args.index("--store") + 1] = str(tmp_path)
    assert main(args) == 2 and "not a map cache (no cache.db)" in capsys.readouterr().err
    args = _init_args(app_workspace, tmp_path / "b")
    args[args.index("--results") + 1] = str(tmp_path)
    assert main(args) == 2 and "not an evaluation's results folder" in capsys.readouterr().err
    args = _init_args(app_workspace, tmp_path / "c")
    args[args.index("--dataset") + 1] = f"siim:{app_workspace / 'rsna'}"
    assert main(args) == 2
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    args = _init_args(app_workspace, tmp_path / "d")
    args[args.index("--model") + 1] = str(tmp_path / "broken.pt")
    assert main(args) == 2 and "broken.pt" in capsys.readouterr().err
    # results of another main model: the app would show other maps than those scored
    args = _init_args(app_workspace, tmp_path / "e")
    first, second = args.index("--model") + 1, args.index("--model", args.index("--model") + 1) + 1
    args[first], args[second] = args[second], args[first]
    assert main(args) == 2
    assert ("scored the maps of rsna_densenet_tiny_s0.pt (weights " in (err := capsys.readouterr().err)
            and "not of the first --model rsna_densenet_tiny_s1.pt" in err)
    assert not [p for p in tmp_path.iterdir() if p.name in ("a", "b", "c", "d", "e")]  # nothing half-made


def test_trust_app_serves_the_workspace(own_workspace, tmp_path, monkeypatch, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "trust_core.cli", "app", "--workspace", str(own_workspace),
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, ok = time.time() + 120, False
        while time.time() < deadline and not ok:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                    ok = reply.status == 200
            except OSError:
                time.sleep(0.5)
        assert ok, "the app did not start"
    finally:
        server.terminate()
        out = server.communicate(timeout=30)[0]
    assert f"serving {own_workspace} at http://127.0.0.1:{port}" in out
    assert main(["app", "--workspace", str(tmp_path / "none")]) == 2
    # beyond this machine without authentication: refused here, before a server starts (the pages refuse too)
    monkeypatch.delenv("TRUST_AUTH", raising=False)
    assert main(["app", "--workspace", str(own_workspace), "--address", "0.0.0.0"]) == 2
    assert "no authentication is configured" in capsys.readouterr().err
    assert main(["app", "--workspace", str(own_workspace), "--port", "99999"]) == 2
    assert "a port is 1–65535" in capsys.readouterr().err


def test_the_app_reads_maps_in_the_storage_the_evaluation_kept(tmp_path):
    import json

    from trust_core.workspace import Workspace

    (tmp_path / "results" / "rsna").mkdir(parents=True)
    assert Workspace(tmp_path).store.map_storage == "compact"
    (tmp_path / "results" / "rsna" / "summary.json").write_text(json.dumps({"map_storage": "exact"}))
    assert Workspace(tmp_path).store.map_storage == "exact"
