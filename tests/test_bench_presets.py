"""``bench_presets``: how far the ``fast`` preset's maps and verdicts are from the paper's."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from trust_core import METHODS
from trust_core.bench_presets import bench_presets, compare_verdicts, method_ssim, read_preset_fidelity


@pytest.fixture
def workspace(app_workspace, tmp_path):
    """A private copy of the tiny workspace (the bench writes results/ and store/ into it)."""
    root = tmp_path / "workspace"
    shutil.copytree(app_workspace, root)
    return root


def test_bench_presets_on_tiny_workspace(workspace, capsys):
    # Randomization (9 model states × 2 replicates at the paper preset) is most of the cost: left out here.
    criteria = ("utility", "repeatability", "reproducibility")
    result = bench_presets(workspace, kinds=("rsna", "siim"), images=2, ssim_images=2, baseline_pairs=1,
                           criteria=criteria)
    lines = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(r"RESULT fast_min_ssim=(\S+) verdict_agreement=(\S+)", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) == pytest.approx(result["fast_min_ssim"], abs=5e-4)
    assert float(match.group(2)) == pytest.approx(result["verdict_agreement"], abs=5e-4)
    assert 0 < result["fast_min_ssim"] <= 1
    assert 0 <= result["verdict_agreement"] <= 1

    assert list(result["per_dataset"]) == ["rsna"]  # the tiny workspace has no SIIM data: skipped
    rsna = result["per_dataset"]["rsna"]
    assert set(rsna["ssim"]) == set(METHODS)
    assert result["fast_min_ssim"] == pytest.approx(min(v for v in result["per_method_ssim"].values()
                                                        if v is not None))
    verdicts = rsna["verdicts"]
    assert 0 < verdicts["total"] and verdicts["agree"] + len(verdicts["disagreements"]) == verdicts["total"]
    assert result["verdict_agreement"] == pytest.approx(verdicts["agree"] / verdicts["total"])
    assert {c for c, *_ in verdicts["disagreements"]} <= set(criteria)
    assert result["images"] == 2 and result["seconds"] >= 0 and result["criteria"] == list(criteria)
    # methods whose parameters are the same in both presets give the same maps
    for m in ("grad", "gbp", "gradcam", "guided_gradcam", "ig"):
        assert rsna["ssim"][m] == pytest.approx(1.0, abs=1e-6)

    path = workspace / "results" / "preset_fidelity.json"
    assert path.is_file()
    assert json.loads(path.read_text()) == read_preset_fidelity(workspace)
    stored = read_preset_fidelity(workspace)
    assert stored["fast_min_ssim"] == pytest.approx(result["fast_min_ssim"])
    assert stored["verdict_agreement"] == pytest.approx(result["verdict_agreement"])
    assert stored["per_method_ssim"] == pytest.approx(result["per_method_ssim"])


def test_method_ssim_of_a_preset_against_itself_is_one():
    rng = np.random.default_rng(0)
    maps = {m: rng.random((3, 32, 32)).astype(np.float32) for m in ("smoothgrad", "xrai")}
    maps["xrai"][1] = np.nan  # a flagged map is left out, not counted as disagreement
    same = method_ssim(maps, {m: v.copy() for m, v in maps.items()})
    assert same == pytest.approx({"smoothgrad": 1.0, "xrai": 1.0})
    other = method_ssim(maps, {m: rng.random((3, 32, 32)).astype(np.float32) for m in maps})
    assert all(v < 0.5 for v in other.values())
    assert np.isnan(method_ssim({"grad": np.full((2, 16, 16), np.nan)}, {"grad": np.zeros((2, 16, 16))})["grad"])


def test_compare_verdicts_counts_and_skips_missing():
    fast = {"criteria": {"utility": {"methods": {"grad": {"verdict": "pass"}, "ig": {"verdict": "fail"}}},
                         "repeatability": {"methods": {"grad": None}}}}
    paper = {"criteria": {"utility": {"methods": {"grad": {"verdict": "pass"}, "ig": {"verdict": "inconclusive"}}},
                          "repeatability": {"methods": {"grad": {"verdict": "pass"}}}}}
    assert compare_verdicts(fast, paper) == {"agree": 1, "total": 2, "both_inconclusive": 0,
                                             "disagreements": [["utility", "ig", "fail", "inconclusive"]]}
    fast["criteria"]["utility"]["methods"]["ig"]["verdict"] = "inconclusive"
    assert compare_verdicts(fast, paper)["both_inconclusive"] == 1  # agreement on nothing decided, counted apart


def test_read_preset_fidelity_missing_or_unreadable(tmp_path):
    assert read_preset_fidelity(tmp_path) is None
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "preset_fidelity.json").write_text("{not json")
    assert read_preset_fidelity(tmp_path) is None


def test_the_apps_sentence_reads_the_figures_and_survives_missing_ones(tmp_path):
    from ui.frame import fast_distance_text
    assert "not measured" in fast_distance_text(tmp_path)
    (tmp_path / "results").mkdir()
    path = tmp_path / "results" / "preset_fidelity.json"
    path.write_text(json.dumps({"fast_min_ssim": 0.862, "verdict_agreement": None,
                                "per_method_ssim": {"smoothgrad": 0.862}}))
    assert "not measured" in fast_distance_text(tmp_path)
    path.write_text(json.dumps({"fast_min_ssim": 0.862, "verdict_agreement": 0.75,
                                "per_method_ssim": {"smoothgrad": 0.862, "grad": 1.0}}))
    text = fast_distance_text(tmp_path)
    assert "0.86 at worst (SmoothGrad)" in text and "75 % of verdicts agree" in text


def test_bench_presets_runs_with_its_defaults(workspace, capsys):
    """``trust bench presets`` as the README documents it (no --criteria): the paper's four criteria, which any
    demo workspace supports (the extended set's data randomization would need a shuffled-label model)."""
    from trust_core.cli import main

    assert main(["bench", "presets", "--workspace", str(workspace), "--n", "1"]) in (0, None)
    out = capsys.readouterr().out
    assert re.search(r"^RESULT fast_min_ssim=\S+ verdict_agreement=\S+$", out, re.M), out[-2000:]
    fidelity = json.loads((workspace / "results" / "preset_fidelity.json").read_text())
    assert fidelity["criteria"] == ["utility", "randomization", "repeatability", "reproducibility"]
