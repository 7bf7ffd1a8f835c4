"""`trust analyze` and `trust figures` on the app's workspace (RSNA phantoms: one reading per film)."""
import json
import re
import shutil
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from scipy import stats

from trust_core.cli import main


@pytest.fixture
def run(app_workspace, tmp_path):
    copy = tmp_path / "rsna"
    shutil.copytree(app_workspace / "results" / "rsna", copy)
    return copy


def test_analyze_writes_its_tables_and_restates_scipy(run, capsys):
    assert main(["analyze", "--run", str(run), "--criteria", "utility", "pointing_game"]) == 0
    printed = capsys.readouterr().out
    assert "no human ceiling: the evaluated rsna films carry one reading each" in printed
    assert "features: instances, relative size, elongation, irrectangularity (CheXlocalize), model confidence" in printed
    analysis = json.loads((run / "analysis.json").read_text())
    assert list(analysis["criteria"]) == ["utility", "pointing_game"]
    features = pd.read_parquet(run / "analysis_features.parquet").set_index("image_id")
    utility = pd.read_parquet(run / "utility.parquet")
    for method, entry in analysis["criteria"]["utility"]["methods"].items():
        scores = utility[utility.method == method].set_index("image_id").auprc
        joined = features.join(scores, how="inner")
        for feature, rho in entry["spearman"].items():
            if rho["rho"] == rho["rho"]:
                assert rho["rho"] == pytest.approx(stats.spearmanr(joined[feature], joined.auprc).statistic)
                if rho["n"] < 10:  # the app workspace's handful of images: ρ only, no CI, no test
                    assert rho["ci_low"] != rho["ci_low"] and rho["p"] != rho["p"] and "too few" in rho["note"]
                elif not rho["note"]:
                    assert rho["ci_low"] <= rho["rho"] <= rho["ci_high"]
    assert set(pd.read_csv(run / "analysis_associations.csv").feature) == {
        "instances", "relative_size", "elongation", "irrectangularity", "confidence"}
    # the folder stays one run's results: a new evaluation may replace it (analysis files are results)
    from trust_core.evaluate.outputs import check_results_folder
    assert check_results_folder(run, overwrite=True) == run


def test_analyze_and_figures_refuse_clearly(run, tmp_path, capsys):
    assert main(["analyze", "--run", str(tmp_path / "nothing")]) == 2
    assert "not an evaluation's results folder" in capsys.readouterr().err
    assert main(["analyze", "--run", str(run), "--methods", "lrp"]) == 2
    assert "--methods ['lrp']: the run has maps of" in capsys.readouterr().err
    assert main(["analyze", "--run", str(run), "--criteria", "miou"]) == 2
    assert "the run did not score ['miou']" in capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    moved = dict(config, dataset=dict(config["dataset"], root=str(tmp_path / "moved")))
    (run / "config.json").write_text(json.dumps(moved))
    assert main(["analyze", "--run", str(run)]) == 2
    assert "is not there any more: give its new place with --dataset rsna:PATH" in capsys.readouterr().err
    assert main(["analyze", "--run", str(run), "--dataset", f"rsna:{config['dataset']['root']}",
                 "--criteria", "utility"]) == 0


def test_figures_are_vector_svg_and_pdf_with_their_provenance(run, tmp_path, capsys):
    out = tmp_path / "figures"
    assert main(["figures", "--run", str(run), "--out", str(out)]) == 0
    assert "SVG and PDF" in capsys.readouterr().out
    names = {p.stem for p in out.iterdir()}
    for name in ("forest_utility", "forest_randomization", "forest_repeatability", "randomization_curves",
                 "utility_boxplots", "why_utility", "why_pointing_game"):
        assert name in names
        svg = (out / f"{name}.svg").read_text()
        ET.fromstring(svg)  # well-formed XML
        text = " ".join(svg.split())
        assert re.search(r"models rsna_densenet_tiny_s0\.pt \(weights [0-9a-f]{8}\)", text) and "preset fast" in text
        assert "fingerprint" in text
        pdf = (out / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType, not Type 3
    assert not (run / "analysis.json").exists()  # figures never write into the results folder
    before = sorted(p.name for p in run.iterdir())
    for inside in (run, run / "figures"):
        assert main(["figures", "--run", str(run), "--out", str(inside)]) == 2
        assert "is inside the results folder" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before
    svg = (out / "why_utility.svg").read_text()
    assert "instances" in svg and "model confidence" in svg and "ρ" in svg


def test_figure_bytes_are_the_figures_trust_figures_writes(run, tmp_path):
    """`trust figures` (and the cohort archive) draw on every core, this process and `python -m
    trust_core.analysis.drawing` processes: the very bytes this process alone draws, in the same order, the
    failure-analysis grids included. The app's per-figure downloads are the same drawing, one per request,
    the Metrics page's plots among them; a figure the run did not score is refused by name."""
    from trust_core.analysis.figures import drawn_figures, figure_bytes, write_figures
    from trust_core.errors import ConfigError

    out = tmp_path / "figures"
    written = write_figures(run, out, workers=2)
    alone = drawn_figures(run, workers=1)
    assert [p.name for p in written] == list(alone) and any(name.startswith("why_") for name in alone)
    assert all((out / name).read_bytes() == data for name, data in alone.items())
    for name, fmt in (("forest_utility", "svg"), ("metric_utility", "pdf"), ("metric_randomization", "svg"),
                      ("utility_boxplots", "pdf")):
        assert figure_bytes(run, name, fmt) == alone[f"{name}.{fmt}"], (name, fmt)
    svg = " ".join(alone["metric_randomization.svg"].decode().split())
    assert "SSIM per image (state 9)" in svg and "baseline" in svg and "fingerprint" in svg
    svg = " ".join(alone["metric_utility.svg"].decode().split())
    assert all(text in svg for text in ("AUPRC per image", "average mask (low)", "localizer (high)", "paper"))
    for name in ("metric_repeatability", "randomization_curves"):
        assert {f"{name}.svg", f"{name}.pdf"} <= set(alone)
    with pytest.raises(ConfigError, match="no figure 'forest_miou'"):
        figure_bytes(run, "forest_miou", "svg")
    with pytest.raises(ConfigError, match="choose one of svg, pdf"):
        figure_bytes(run, "forest_utility", "png")
