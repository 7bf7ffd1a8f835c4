"""Reports: PDF opens and holds metrics and parameters; identifiers never leak unless asked."""
import re
import zlib

import pydicom
import pandas as pd
import pytest

from trust_core.report import build_image_report, pseudonym, render_html, render_pdf
from trust_core.workspace import Workspace

PLANTED = {"PatientName": "Doe^Jane", "PatientBirthDate": "19700101", "AccessionNumber": "ACC998877",
           "InstitutionName": "St Elsewhere Hospital"}


def pdf_text(data: bytes) -> str:
    """The PDF's streams, inflated where they are deflated. A stream is cut at the first ``endstream`` after
    it, so a deflated stream whose last byte is a CR lost it to the regex's line end (the report's bytes change
    with its time stamp): it is inflated with a decompressobj, which gives every byte it can decode."""
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            chunks.append(zlib.decompressobj().decompress(stream))
        except zlib.error:
            chunks.append(stream)
    return b"\n".join(chunks).decode("latin-1")


@pytest.fixture(scope="module")
def planted(app_workspace):
    ws = Workspace(app_workspace)
    dataset = ws.dataset("rsna")
    image_id = dataset.ids(split="test", label=1)[0]
    path = dataset.record(image_id).path
    ds = pydicom.dcmread(path)
    for key, value in PLANTED.items():
        setattr(ds, key, value)
    ds.save_as(path)
    return ws, image_id


def test_deidentified_by_default(planted):
    ws, image_id = planted
    report = build_image_report(ws, "rsna", image_id, "rsna_densenet_tiny_s0.pt", preset="fast")
    html_text, pdf = render_html(report), render_pdf(report)
    text = pdf_text(pdf)
    assert report.title == pseudonym(image_id, ws) and report.identifiers == {}  # the workspace's keyed pseudonym
    # Search the text, not the pictures: base64 and pixel streams hold any short string by chance.
    html_words = re.sub(r"data:image/(?:png|jpeg);base64,[A-Za-z0-9+/=]+", "", html_text)
    for secret in list(PLANTED.values()) + [image_id]:
        assert secret not in html_words and secret not in text, secret
    assert pdf.startswith(b"%PDF-")
    assert "AUPRC" in text and "ig_steps" in text and "De-identified" in text
    for label in ("Gradient", "SmoothGrad", "Integrated Gradients", "XRAI", "Guided Grad-CAM"):
        assert label in html_text
    assert "dataset_fingerprint" in html_text and "rsna_densenet_tiny_s0.pt" in html_text


def test_identifiers_only_when_asked(planted):
    ws, image_id = planted
    report = build_image_report(ws, "rsna", image_id, "rsna_densenet_tiny_s0.pt", preset="fast",
                                include_identifiers=True)
    html_text = render_html(report)
    assert "Doe^Jane" in html_text and "19700101" in html_text and image_id in html_text
    assert "Doe^Jane" in pdf_text(render_pdf(report))


def test_cohort_archive_and_cli(app_workspace, tmp_path):
    import zipfile

    from trust_core.cli import main
    assert main(["report", "--workspace", str(app_workspace), "--dataset", "rsna", "--cohort",
                 "--out", str(tmp_path / "c.zip")]) == 0
    names = zipfile.ZipFile(tmp_path / "c.zip").namelist()
    assert "rsna/summary.json" in names and "rsna/utility.parquet" in names and "rsna/scorecard.csv" in names
    # the failure analysis and the figures for a paper, computed for the archive (the workspace is untouched)
    assert "rsna/analysis.json" in names and "rsna/analysis_features.csv" in names
    assert not (app_workspace / "results" / "rsna" / "analysis.json").exists()
    for name in ("forest_utility", "randomization_curves", "utility_boxplots", "why_utility"):
        assert f"rsna/figures/{name}.svg" in names and f"rsna/figures/{name}.pdf" in names
    archive = zipfile.ZipFile(tmp_path / "c.zip")
    features = archive.read("rsna/analysis_features.csv").decode()
    assert "img-" in features  # pseudonyms, as every table of the archive
    utility_ids = set(pd.read_parquet(app_workspace / "results" / "rsna" / "utility.parquet").image_id)
    assert not any(i in features for i in utility_ids)
    assert main(["report", "--workspace", str(app_workspace), "--dataset", "rsna", "--out",
                 str(tmp_path / "x.pdf")]) == 2  # missing --image: a clear error, exit code 2


def test_report_refuses_before_creating_anything(app_workspace, tmp_path, capsys, monkeypatch):
    """No workspace there, a workspace without results, an --out of the wrong kind: `error:` (exit 2), and
    nothing created (it used to make <workspace>/store, and ./cache/demo/store without --workspace)."""
    import shutil

    from trust_core.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRUST_WORKSPACE", raising=False)
    cases = [(["--workspace", str(tmp_path / "nope"), "--cohort", "--out", "c.zip"], "is not a folder: make one"),
             (["--cohort", "--out", "c.zip"], "the workspace cache/demo (no --workspace; $TRUST_WORKSPACE or cache/demo) is not a folder"),
             (["--workspace", str(app_workspace), "--cohort", "--out", "c.pdf"], "the cohort results are a ZIP"),
             (["--workspace", str(app_workspace), "--image", "x", "--model", "m.pt", "--out", "r.docx"],
              "a per-image report is a PDF or an HTML file")]
    bare = tmp_path / "bare"
    shutil.copytree(app_workspace, bare, ignore=shutil.ignore_patterns("results", "store"))
    cases.append((["--workspace", str(bare), "--cohort", "--out", "c.zip"], "no evaluation results for 'rsna' in"))
    for args, said in cases:
        assert main(["report", *args]) == 2, args
        assert said in capsys.readouterr().err, args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare"] and not (bare / "store").exists()


def test_overlapping_boxes_are_drawn_apart():
    """Two overlapping boxes: each rectangle is drawn, so the edges inside the other box show (a mask
    contour would draw their union's outline only)."""
    import numpy as np

    from trust_core.data.records import Box
    from trust_core.report import overlay
    mask = np.zeros((100, 100), bool)
    mask[10:50, 10:50] = mask[30:70, 30:70] = True
    boxes = [Box(10, 10, 40, 40), Box(30, 30, 40, 40)]
    rgb = overlay(np.zeros((100, 100), np.float32), None, mask=mask, boxes=boxes, size=100)
    green = (rgb[..., 1] == 255) & (rgb[..., 0] == 0) & (rgb[..., 2] == 0)
    assert green[40, 30] and green[30, 40]  # box 2's top-left corner edges, inside box 1
    assert green[50, 45] and green[45, 50]  # box 1's bottom and right edges, inside box 2
    union = overlay(np.zeros((100, 100), np.float32), None, mask=mask, size=100)
    assert not ((union[..., 1] == 255) & (union[..., 2] == 255))[40, 30]  # the union outline misses it


def test_page_one_holds_the_warning_the_prediction_and_the_verdicts(app_workspace):
    """Page 1: the non-paper preset's warning, what the model predicts and which class the maps explain, and
    per method the cohort's verdict on each of the paper's criteria (as the scorecard gives them)."""
    from trust_core.report import scorecard_table

    ws = Workspace(app_workspace)
    image_id = ws.dataset("rsna").ids(split="test", label=1)[1]
    report = build_image_report(ws, "rsna", image_id, "rsna_densenet_tiny_s0.pt", preset="fast")
    pdf = render_pdf(report)
    pages = [zlib.decompress(s).decode("latin-1") for s in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
             if s.startswith(b"x")]
    first = next(p for p in pages if "Saliency report" in p)
    for text in ("Warning: Preset Fast", "predicts class", "maps explain class", "Verdicts per method",
                 "Repeatability", "Reproducibility"):
        assert text in first, text
    table = scorecard_table(ws.results("rsna"), "rsna")
    expected = table[(table.method == "gradcam") & (table.criterion == "repeatability")].verdict.iloc[0]
    assert report.verdicts["gradcam"]["Repeatability"] == expected
    # 3 SSIM images: below the 6 paired images a verdict needs; the report says why, not just "inconclusive"
    assert expected == "inconclusive"
    assert "A verdict needs at least 6 paired images. " in report.verdict_source
    assert "Paired images per verdict: Utility n = " in report.verdict_source and "Repeatability n = 3" in report.verdict_source
    assert "Repeatability inconclusive: n=3 < 6: too few images to decide" in report.verdict_source
    assert "needs at least 6 paired images" in first  # page 1 of the PDF too
    # the maps start on page 1, right after the verdicts (its lower half was left empty before)
    assert re.search(r"Maps \\?\(each over the film", first) and re.search(r"/I\d+ Do", first)
    output = ws.prediction("rsna", image_id, "rsna_densenet_tiny_s0.pt")
    assert f"{output['scores'][output['predicted']]:.2f}" in report.prediction


def test_maps_are_at_the_films_resolution_and_long_titles_wrap(app_workspace):
    ws = Workspace(app_workspace)
    dataset = ws.dataset("rsna")
    image_id = dataset.ids(split="test", label=1)[1]
    report = build_image_report(ws, "rsna", image_id, "rsna_densenet_tiny_s0.pt", preset="fast",
                                include_identifiers=True)
    report.title = "1.2.826.0.1.3680043.8.498.10025629581362719322093491184186345912"  # a long UID
    pdf = render_pdf(report)
    native = dataset.native_shape(image_id)[0]
    sizes = {int(w) for w in re.findall(rb"/Subtype /Image.*?/Width (\d+)", pdf, re.S)}
    assert sizes == {min(native, 1536)} and native > 128  # film resolution, not the 128 px maps
    first = next(zlib.decompress(s).decode("latin-1") for s in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf,
                                                                            re.S) if b"x" == s[:1])
    shown = re.findall(r"\((.*?)\) Tj", first)
    title = "Saliency report - " + report.title
    assert title not in shown and "".join(shown).replace(" ", "").find(title.replace(" ", "")) >= 0  # wrapped


def test_non_square_films_keep_their_shape_and_box_positions():
    """A 300 × 200 film (taller than wide) stays 300 × 200 in the report, and a box at x 120..160,
    y 30..90 of the film is drawn there (x and y scaled apart, not by the height alone)."""
    import io

    import numpy as np
    from PIL import Image

    from trust_core.data.records import Box
    from trust_core.report.report import ImageReport

    film = np.full((300, 200), 0.2, np.float32)
    box = Box(120, 30, 40, 60)
    report = ImageReport(title="t", image=film, mask=np.zeros((300, 200), bool), boxes=[box],
                         maps={"grad": np.zeros((64, 64), np.float32)},
                         metrics=[{"method": "Gradient", "key": "grad", "auprc": None, "flag": ""}],
                         params={}, provenance={})
    caption, jpeg = report.panels()[0]
    picture = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)
    assert picture.shape[:2] == (300, 200)
    green = (picture[..., 1] > 180) & (picture[..., 0] < 90) & (picture[..., 2] < 90)
    ys, xs = np.nonzero(green)
    assert abs(xs.min() - 120) <= 2 and abs(xs.max() - 160) <= 2 and abs(ys.min() - 30) <= 2 and abs(ys.max() - 90) <= 2
    assert render_pdf(report).startswith(b"%PDF")


def test_report_of_an_image_named_by_its_pseudonym(app_workspace, tmp_path, capsys):
    """The reports and the app name images by pseudonym: `trust report --image img-…` finds that image of the
    workspace (the way back needs the workspace's key), and an unknown pseudonym is refused by name."""
    from trust_core.cli import main
    from trust_core.pseudonyms import image_of, pseudonym
    from trust_core.workspace import Workspace

    ws = Workspace(app_workspace)
    image = ws.dataset("rsna").ids(split="test", label=1)[0]
    named = pseudonym(image, app_workspace)
    assert image_of(named, ws.dataset("rsna").ids(), app_workspace) == image
    assert image_of("img-0000000000", ws.dataset("rsna").ids(), app_workspace) is None
    assert main(["report", "--workspace", str(app_workspace), "--dataset", "rsna", "--image", named, "--model",
                 "rsna_densenet_tiny_s0.pt", "--methods", "grad", "--out", str(tmp_path / "r.html")]) == 0
    html_text = (tmp_path / "r.html").read_text()
    assert named in html_text and image not in html_text
    assert main(["report", "--workspace", str(app_workspace), "--dataset", "rsna", "--image", "img-0000000000",
                 "--model", "rsna_densenet_tiny_s0.pt", "--out", str(tmp_path / "x.html")]) == 2
    assert "unknown image id 'img-0000000000'" in capsys.readouterr().err


def test_the_cohort_zip_holds_the_current_analysis_not_a_stale_file(app_workspace, tmp_path):
    """A results folder with an analysis.json of an older version: the archive computes the analysis again
    and ships that one (it used to copy the stale file beside tables and figures of the new one)."""
    import json
    import shutil
    import zipfile

    from trust_core.analysis.analyze import ANALYSIS_VERSION
    from trust_core.report import cohort_archive
    from trust_core.workspace import Workspace

    ws_root = tmp_path / "ws"
    shutil.copytree(app_workspace, ws_root, ignore=shutil.ignore_patterns("store"))
    (ws_root / "results" / "rsna" / "analysis.json").write_text(json.dumps({"version": "analysis-0", "stale": True}))
    archive = zipfile.ZipFile(__import__("io").BytesIO(cohort_archive(Workspace(ws_root), "rsna")))
    shipped = json.loads(archive.read("rsna/analysis.json"))
    assert shipped["version"] == ANALYSIS_VERSION and "stale" not in shipped
