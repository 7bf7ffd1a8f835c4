"""Every page of the real app, through Streamlit's AppTest, plus the key interactions."""
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from trust_core.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
from ui.pages import PAGES as SPECS

PAGES = [spec.path for spec in SPECS]  # the registry app.py builds its navigation from


def start(workspace, monkeypatch):
    monkeypatch.setenv("TRUST_WORKSPACE", str(workspace))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def viewer(at, n: int = 0) -> dict:
    """What the page sent its ``n``-th browser viewer: film, panels, frames, settings (the component's args)."""
    import json

    return json.loads(at.get("component_instance")[n].proto.json_args)


def image_ids(workspace, at, kind: str = "rsna") -> list[str]:
    """The image picker's ids, in its order (it names them by pseudonym)."""
    from trust_core.report.report import pseudonym
    from trust_core.workspace import Workspace

    lookup = {pseudonym(i, workspace): i for i in Workspace(workspace).dataset(kind).ids()}  # its key
    return [lookup.get(label, label) for label in at.selectbox(key="image_id").options]


def test_app_registry_lists_every_page():
    assert sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py")) == sorted(PAGES)
    assert len({spec.url_path for spec in SPECS}) == len(SPECS) and sum(spec.default for spec in SPECS) == 1


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(app_workspace, monkeypatch, page):
    at = start(app_workspace, monkeypatch)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_each_method_is_drawn_in_its_own_colour_on_every_page(app_workspace, monkeypatch):
    """Metrics boxes and the Randomization page's curves (this image, the cohort mean, the random-pair
    baseline) take each method's colour from the registry (they used to differ from page to page)."""
    import json as _json

    from trust_core.saliency import METHODS
    from trust_core.saliency.registry import method_colour

    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    boxes = [t for c in at.get("plotly_chart") for t in _json.loads(c.proto.spec)["data"] if t["type"] == "box"]
    by_label = {m.label: k for k, m in METHODS.items()}
    assert boxes and all(t["marker"]["color"] == method_colour(by_label[t["name"]]) for t in boxes)
    from ui.measures import ssim_curves

    live = {"grad": [1.0, 0.5], "gradcam": [1.0, 0.7]}
    results = {"criteria": {"randomization": {"methods": {m: {"curve": [{"state_index": 1, "mean": 0.6}],
                                                             "baseline": 0.3} for m in live}}}}
    series = ssim_curves(results, ["original", "classifier"], list(live), live)["series"]
    for m in live:
        mine = [s for s in series if s["name"].startswith(METHODS[m].label + " —")]
        assert len(mine) == 3 and {s["color"] for s in mine} == {method_colour(m)}


def test_scorecard_shows_results_and_paper_values(app_workspace, monkeypatch):
    at = start(app_workspace, monkeypatch)
    assert any("pass" in m.value for m in at.metric)
    frames = at.dataframe
    assert len(frames) >= 4  # one table per criterion
    assert any("paper" in df.value.columns for df in frames)
    assert any("fast" in w.value for w in at.warning)  # the non-paper preset is called out
    # each forest plot: our mean and CI beside the baseline(s) (left), and what the verdict reads (right): the
    # paired difference ours − baseline and its CI, as the evaluation's summary.json has them
    import json as _json

    summary = _json.loads((app_workspace / "results" / "rsna" / "summary.json").read_text())
    spec = _json.loads(at.get("plotly_chart")[0].proto.spec)
    methods = summary["criteria"]["utility"]["methods"]
    right = [t for t in spec["data"] if t.get("xaxis") == "x2"]
    assert {t["name"] for t in right} <= {"pass", "fail", "inconclusive"} and right
    def values(v):  # plotly's JSON keeps number arrays as base64 ("bdata") of their dtype
        import base64

        import numpy as np
        return np.frombuffer(base64.b64decode(v["bdata"]), v["dtype"]).tolist() if isinstance(v, dict) else list(v)

    shown = {y: (x, x + plus, x - minus) for t in right for y, x, plus, minus in
             zip(values(t["y"]), values(t["x"]), values(t["error_x"]["array"]), values(t["error_x"]["arrayminus"]))}
    from trust_core.saliency import METHODS

    for method, entry in methods.items():
        if entry and entry.get("difference_ci") and all(v == v for v in entry["difference_ci"]):
            x, high, low = shown[METHODS[method].label]
            assert (x, low, high) == pytest.approx((entry["difference"], *entry["difference_ci"]))
    names = {t["name"] for t in spec["data"] if t.get("xaxis") in (None, "x")}
    assert {"ours", "baseline (low)", "baseline (high: localizer)"} <= names


def test_the_scorecard_says_why_a_verdict_is_inconclusive(app_workspace, monkeypatch):
    """The workspace scores 3 SSIM images: below the 6 paired images a verdict needs, its randomization,
    repeatability and reproducibility rows are inconclusive, and the page says so beside each one (and the rule
    in its caption), as the CLI does."""
    at = start(app_workspace, monkeypatch)
    assert any("a verdict needs at least 6 paired images" in c.value for c in at.caption)
    frames = [df.value for df in at.dataframe if "why inconclusive" in df.value.columns]
    assert len(frames) >= 4
    rows = pd.concat(frames)
    small = rows[rows["n (paired)"] < 6]
    assert len(small) and (small.verdict == "inconclusive").all()
    # the paper's point rule is marked as a point estimate where the images are too few for a verdict
    assert small["paper rule"].str.contains(r"^(pass|fail|n/a)(?: \(point estimate, n=\d\))?$").all()
    assert small[small["paper rule"] != "n/a"]["paper rule"].str.contains("point estimate").all()
    assert small["why inconclusive"].str.contains(r"n=\d < 6: too few images to decide").all()
    assert (rows[rows.verdict != "inconclusive"]["why inconclusive"] == "").all()
    # where the verdict and the paper's point rule differ, the row says why; where they agree, nothing
    differ = rows[(rows["paper rule"] != "n/a") & (rows.verdict != rows["paper rule"].str.split().str[0])]
    assert len(differ) and (differ["verdict vs paper rule"] != "").all()
    assert (rows[rows.verdict == rows["paper rule"]]["verdict vs paper rule"] == "").all()
    assert any("Two rules read the same numbers" in m.value for m in at.markdown)
    # n per criterion beside its counts, and the small-sample warning (3 SSIM images here)
    assert any("n = " in c.value and "images" in c.value for c in at.caption)
    assert any("Small sample" in w.value for w in at.warning)


def test_the_extended_toggle_adds_the_newer_criteria_and_methods(app_workspace, monkeypatch):
    """Off (the default): the paper's four criteria and eight methods. On: every criterion the run scored,
    on the scorecard and the metrics page, and every registered method in the pickers."""
    at = start(app_workspace, monkeypatch)
    headers = [h.value for h in at.subheader]
    assert any(h.startswith("Utility") for h in headers) and not any("Pointing game" in h for h in headers)
    at.toggle[0].set_value(True).run()
    assert not at.exception, at.exception
    headers = [h.value for h in at.subheader]
    for label in ("Pointing game", "Energy pointing game", "Randomization (Spearman)", "Randomization (HOG)", "eMPRT"):
        assert any(h.startswith(label) for h in headers), (label, headers)
    assert len([m for m in at.metric]) == 9  # one tile per criterion scored
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    assert at.session_state["_extended"] is True  # the choice follows you across pages
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "eMPRT" in titles and "Pointing game" in titles
    at.switch_page("pages/explorer.py").run()
    assert not at.exception, at.exception
    labels = [p["label"] for p in viewer(at)["panels"]]
    assert "LRP" in labels and "Grad-CAM++" in labels


def test_explorer_sends_the_viewer_every_map_and_the_native_film(app_workspace, monkeypatch):
    """The viewer gets the film at native resolution in its stored values (decoded here as the browser does:
    zlib, little-endian) and every method's map exactly; switching image re-renders fast (server time)."""
    import base64
    import zlib

    import numpy as np

    from trust_core.data import read_dicom

    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/explorer.py").run()
    assert not at.exception
    args = viewer(at)
    ws = Workspace(app_workspace)
    image_id = image_ids(app_workspace, at)[0]
    dicom = read_dicom(ws.dataset("rsna").record(image_id).path)
    film = args["film"]
    stored = np.frombuffer(zlib.decompress(base64.b64decode(film["data"])), {"u1": "<u1", "u2": "<u2"}[film["dtype"]])
    np.testing.assert_array_equal(stored.reshape(film["shape"]) * film["scale"] + film["offset"],
                                  dicom.modality_values)
    assert film["shape"] == list(dicom.modality_values.shape) and film["shape"][0] > 128  # native, not a thumbnail
    maps = ws.maps("rsna", [image_id], at.session_state["_model"], methods=[p["key"] for p in args["panels"]])
    for p in args["panels"]:
        values = np.frombuffer(zlib.decompress(base64.b64decode(p["map"]["data"])), "<f4").reshape(p["map"]["shape"])
        np.testing.assert_array_equal(values, maps[p["key"]][0])
    assert [p["label"] for p in args["panels"]][:3] == ["Gradient", "SmoothGrad", "Integrated Gradients"]
    truth = args["truth"]  # RSNA: each box on its own, in the film's pixels
    assert len(truth["boxes"]) == len(ws.dataset("rsna").boxes(image_id)) >= 1
    images = at.selectbox(key="image_id").options  # pseudonyms
    assert all(label.startswith("img-") for label in images)
    at.selectbox(key="image_id").select(images[-1]).run()
    at.selectbox(key="image_id").select(images[0]).run()
    # Back to an image seen: fast because no map is computed again, every one comes from the cache (counted:
    # a loaded machine stretches any wall clock; AppTest runs the page in this process).
    import importlib

    explain_module = importlib.import_module("trust_core.saliency.explain")
    computed = []
    compute = explain_module._compute_within_memory
    monkeypatch.setattr(explain_module, "_compute_within_memory", lambda *a, **k: computed.append(1) or compute(*a, **k))
    started = time.perf_counter()
    at.selectbox(key="image_id").select(images[-1]).run()
    elapsed_image = time.perf_counter() - started
    assert not at.exception and viewer(at)["data_key"] != args["data_key"]
    print(f"explorer image switch, warm cache: {elapsed_image * 1000:.0f} ms (AppTest, whole script)")
    assert not computed, f"{len(computed)} map computations on a warm image switch"
    assert elapsed_image < 10, elapsed_image  # well under a second unloaded: only a hang or a recomputation fails


def test_randomization_scrubber(app_workspace, monkeypatch):
    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/randomization.py").run()
    assert not at.exception
    args = viewer(at)
    states = Workspace(app_workspace).state_names(at.session_state["_model"])
    assert args["layout"] == "states" and len(args["frames"]) == len(states)
    methods = [p["key"].split("@")[0] for p in args["panels"]]
    for i, frame in enumerate(args["frames"]):  # each frame: its label and its own state's maps, together
        assert frame["label"].startswith(f"state {i}/") and frame["label"].endswith(states[i])
        assert [p["key"] for p in frame["panels"]] == [f"{m}@{i}" for m in methods]
    assert all(p["caption"] == "SSIM 1.00" for p in args["frames"][0]["panels"])
    names = [s["name"] for s in args["curve"]["series"]]
    assert "Gradient — this image" in names and "Gradient — cohort mean" in names
    baselines = [s for s in args["curve"]["series"] if s["name"].endswith("baseline")]
    assert baselines and len({s["color"] for s in baselines}) == len(baselines)  # each its own colour
    # … its method's (as on every page), dotted: its method's curves are solid (this image) and dashed (cohort)
    for b in baselines:
        method = b["name"].split(" — ")[0]
        mine = [s for s in args["curve"]["series"] if s["name"].split(" — ")[0] == method]
        assert {s["color"] for s in mine} == {b["color"]} and b["dash"] == "dot"
        assert sorted(s["dash"] for s in mine) == sorted(["", "dash", "dot"][:len(mine)])


def test_report_export(app_workspace, monkeypatch):
    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/reports.py").run()
    at.button[0].click().run()
    assert not at.exception
    _built_for, title, html_text, pdf = at.session_state["report"]
    assert pdf.startswith(b"%PDF") and "AUPRC" in html_text and title.startswith("img-")
    # the cohort ZIP is built when asked (seconds: the failure analysis and the figures), then offered
    assert "cohort" not in at.session_state
    next(b for b in at.button if b.label.startswith("Prepare cohort results")).click().run()
    assert not at.exception
    import io
    import zipfile
    names = zipfile.ZipFile(io.BytesIO(at.session_state["cohort"][1])).namelist()
    assert "rsna/analysis.json" in names and "rsna/figures/why_utility.svg" in names


def test_upload_builtin_example(app_workspace, monkeypatch):
    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/upload.py").run()
    at.radio[0].set_value("Example: real chest film RG1_UNCR (pydicom-data)").run()
    assert not at.exception and not at.error
    assert any("Maps explain class" in s.value and "probability" in s.value for s in at.success)
    # a model trained on the synthetic phantoms, run on a real film: said so
    assert any("unlike the model's training films" in w.value for w in at.warning), [w.value for w in at.warning]


def test_bring_your_own_model_joins_the_picker_and_the_pages_run_on_it(app_workspace, monkeypatch, tmp_path):
    """A model added as a spec (what the sidebar's 'Bring your own model' form writes, after checking it)
    is offered by the model picker for every dataset, and the pages run on it: a torchvision ResNet18 at
    64 px with ImageNet statistics. (AppTest drops the sidebar on reruns under st.navigation, so the form
    itself is exercised in test_browser.test_bring_your_own_model_form_in_chromium and its core,
    Workspace.add_model, in test_spec.)"""
    import shutil

    from trust_core.workspace import Workspace

    workspace = tmp_path / "ws"
    shutil.copytree(app_workspace, workspace, ignore=shutil.ignore_patterns("store"))
    Workspace(workspace).add_model("mine", {"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 2},
                                            "preprocessing": {"size": 64, "normalization": "imagenet"}})
    at = start(workspace, monkeypatch)
    assert at.selectbox(key="model").options[-1] == "mine.toml"
    at.selectbox(key="model").select("mine.toml").run()
    for page in ("pages/explorer.py", "pages/randomization.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]


def test_a_multi_finding_dataset_has_a_finding_picker(app_workspace, monkeypatch, tmp_path):
    """NIH-style films (two findings) assessed with the RSNA models, as the demo does: the sidebar offers
    the findings (the one with results first), the scorecard names it, and another finding says where its
    results would come from instead of showing the first one's."""
    import json
    import shutil

    from tests.conftest import APP_LIGHT
    from trust_core.data import open_dataset
    from trust_core.demo.films import build_nih_phantom
    from trust_core.evaluate import EvalConfig, evaluate
    from trust_core.layout import workspace_models

    workspace = tmp_path / "ws"
    shutil.copytree(app_workspace, workspace, ignore=shutil.ignore_patterns("store", "results"))
    build_nih_phantom(workspace / "nih", n_images=24, workers=1)
    index = json.loads((workspace / "models" / "index.json").read_text())
    for entry in index["models"]:
        entry["also"] = ["nih"]
    (workspace / "models" / "index.json").write_text(json.dumps(index))
    classifiers, localizers = workspace_models(workspace, "nih")
    dataset = open_dataset(f"nih:{workspace / 'nih'}", finding="Infiltrate", image_size=64)
    evaluate(dataset, classifiers, EvalConfig(preset="fast", overrides=APP_LIGHT, ssim_images=3, baseline_pairs=2,
                                              criteria=("utility",)), localizers=localizers,
             out=workspace / "results" / "nih")
    monkeypatch.setenv("TRUST_WORKSPACE", str(workspace))
    monkeypatch.chdir(ROOT)

    def opened(**choices):  # (AppTest drops the sidebar on reruns: choices are set before the first run)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        for name, value in choices.items():
            at.session_state[f"_{name}"] = value
        at.run()
        assert not at.exception, at.exception
        return at

    at = opened(dataset="nih")
    assert at.selectbox(key="finding").options == ["Infiltrate", "Pneumothorax"]
    assert at.selectbox(key="finding").value == "Infiltrate"  # the one with results
    assert any("NIH — Infiltrate" in m.value for m in at.markdown)
    other = opened(dataset="nih", finding="Pneumothorax")
    assert any("results of this workspace are for **Infiltrate**" in i.value for i in other.info)
    other.switch_page("pages/explorer.py").run()
    assert not other.exception and not other.error, [e.value for e in other.error]


def test_a_report_is_cleared_when_its_image_changes(app_workspace, monkeypatch):
    """The stale-report regression: a report built for one image is not offered for another."""
    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/reports.py").run()
    labels = at.selectbox(key="image_id").options
    images = image_ids(app_workspace, at)
    at.selectbox(key="image_id").select(labels[0]).run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["report"][0][3] == images[0]
    assert any("ready" in c.value for c in at.caption)
    at.selectbox(key="image_id").select(labels[-1]).run()
    assert "report" not in at.session_state
    assert not any("ready" in c.value for c in at.caption)


def test_the_gallery_shows_method_labels(app_workspace, monkeypatch):
    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/explorer.py").run()
    columns = list(at.dataframe[0].value.columns)
    assert "Guided Backprop" in columns and "Smooth IG" in columns and "gbp" not in columns


def test_the_explorer_says_which_class_is_explained_and_its_probability(app_workspace, monkeypatch):
    import re

    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/explorer.py").run()
    assert not at.exception
    line = next(c.value for c in at.markdown if c.value.startswith("Maps explain class"))
    match = re.match(r"Maps explain class (\d) — \*\*(no finding|finding)\*\* \(the model's probability (\d\.\d\d)", line)
    assert match, line
    if match.group(2) == "no finding":
        assert any("explain class 0, **no finding**" in w.value for w in at.warning)
    # the negative class chosen while the model predicts the finding: said so, too
    box = at.selectbox(key="explain_target")
    box.select(next(o for o in box.options if o.startswith("0:"))).run()
    assert any("explain class 0, **no finding**" in w.value and ("you chose it" in w.value or "predicts this film "
               "negative" in w.value) for w in at.warning)


@pytest.mark.parametrize("page", ["pages/explorer.py", "pages/compare.py", "pages/randomization.py",
                                  "pages/reports.py"])
def test_pages_name_images_by_pseudonym_unless_identifiers_are_asked(app_workspace, monkeypatch, page):
    at = start(app_workspace, monkeypatch)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    real = set(Workspace(app_workspace).dataset("rsna").ids())
    labels = at.selectbox(key="image_id").options
    assert labels and all(label.startswith("img-") and label not in real for label in labels)
    shown = " ".join(str(getattr(e, "value", "")) for kind in ("markdown", "caption", "dataframe", "subheader")
                     for e in getattr(at, kind))
    shown += " ".join(c.proto.json_args for c in at.get("component_instance"))  # what the viewer is sent
    assert not any(i in shown for i in real)
    at.session_state["_identifiers"] = True  # the sidebar's switch
    at.run()
    assert set(at.selectbox(key="image_id").options) <= real


def test_a_metrics_click_opens_the_explorer_at_its_image_and_method(app_workspace, monkeypatch):
    """What the Metrics page's click handler stores (image and method) is what the explorer shows."""
    at = start(app_workspace, monkeypatch)
    image = Workspace(app_workspace).dataset("rsna").ids(split="test", label=1)[-1]
    at.session_state["_image_id"] = image
    at.session_state["_explorer_method"] = "xrai"
    at.switch_page("pages/explorer.py").run()
    assert not at.exception, at.exception
    assert viewer(at)["settings"]["method"] == "xrai"
    from trust_core.report.report import pseudonym
    assert at.selectbox(key="image_id").value == pseudonym(image, app_workspace)
    # what the viewer sends back (as its frontend's setComponentValue would) is kept across pages and images
    settings = viewer(at)["settings"]  # the frontend numbers each change it sends
    sent = dict(settings, opacity=0.8, cmap="jet", window={"preset": "lung"}, gt=False, seq=settings["seq"] + 1)
    at.session_state["explorer_viewer"] = sent
    at.run()
    at.switch_page("pages/metrics.py").run()
    at.switch_page("pages/explorer.py").run()
    assert viewer(at)["settings"] == sent
    at.selectbox(key="image_id").select(at.selectbox(key="image_id").options[1]).run()
    assert viewer(at)["settings"] == sent
    frames = [f.value for f in at.dataframe]
    measured = [f for f in frames if "mass inside GT" in f.columns]
    assert measured and set(measured[0].method) >= {"Gradient", "XRAI"}


def test_the_explained_class_can_be_chosen(app_workspace, monkeypatch):
    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/explorer.py").run()
    box = at.selectbox(key="explain_target")
    assert box.value.startswith("predicted") and any(o.startswith("0:") for o in box.options)
    box.select(next(o for o in box.options if o.startswith("0:"))).run()
    assert not at.exception, at.exception
    assert any("Maps explain class 0" in c.value for c in at.markdown)


def test_a_run_is_planned_estimated_and_confirmed_before_it_replaces_results(app_workspace, monkeypatch):
    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/runs.py").run()
    # the form starts from the stored run's choices: a run with its defaults keeps the cohort's size
    import json as _json

    stored = _json.loads((app_workspace / "results" / "rsna" / "config.json").read_text())["config"]
    numbers = {n.label: n.value for n in at.number_input}
    assert numbers == {"Utility images (max; 0: every positive test image)": stored["utility_limit"] or 0,
                       "Images for SSIM criteria": stored["ssim_images"]}
    assert next(s for s in at.selectbox if s.label == "Preset").value == stored["preset"]
    at.button[0].click().run()  # plan
    assert not at.exception, at.exception
    plan = " ".join(m.value for m in at.markdown if "Plan" in m.value)
    assert "units" in plan and "forward+backward passes" in plan and "on this machine" in plan
    assert any("replaces the current RSNA results" in w.value for w in at.warning)
    start_button = next(b for b in at.button if b.label == "Start evaluation")
    assert start_button.disabled  # not before the replacement is confirmed
    next(c for c in at.checkbox if c.label.startswith("Replace the RSNA")).check().run()
    assert not next(b for b in at.button if b.label == "Start evaluation").disabled
    assert any("No evaluation job has run" in c.value or "units" in c.value for c in at.caption)  # the job list


def test_messages_name_images_by_pseudonym(app_workspace, monkeypatch):
    """Error and job messages carry file names and ids: redacted unless identifiers are asked for."""
    import ui.state
    from trust_core.report.report import pseudonym
    from ui.frame import redact

    ws = Workspace(app_workspace)
    image = ws.dataset("rsna").ids()[0]
    monkeypatch.setattr(ui.state, "workspace", lambda: ws)
    monkeypatch.setattr(ui.state, "kind", lambda: "rsna")
    monkeypatch.setattr(ui.state, "shared", lambda name, default=None: False)
    message = f"cannot decode /data/rsna/stage_2_train_images/{image}.dcm: bad pixel data"
    assert redact(message) == message.replace(image, pseudonym(image, ws))
    monkeypatch.setattr(ui.state, "shared", lambda name, default=None: name == "identifiers")
    assert redact(message) == message


def test_a_scorecard_cell_opens_its_method_in_the_explorer_or_on_metrics(app_workspace, monkeypatch):
    """Choosing a row of a criterion's table offers its method in the explorer (on the image it scored worst
    on for that criterion) and the criterion on Metrics (first)."""
    at = start(app_workspace, monkeypatch)
    table = next(f.value for f in at.dataframe if "verdict" in f.value.columns)
    row = next(k for k, m in enumerate(table.method) if m == "XRAI")
    at.session_state["scorecard_utility"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    next(b for b in at.button if b.label.startswith("🔎 XRAI")).click().run()
    assert not at.exception, at.exception
    utility = Workspace(app_workspace).table("rsna", "utility")
    worst = utility[utility.method == "xrai"].groupby("image_id").auprc.mean().idxmin()
    assert at.session_state["_explorer_method"] == "xrai" and at.session_state["_image_id"] == worst
    assert viewer(at)["settings"]["method"] == "xrai"  # the explorer opened with XRAI large
    at.switch_page("pages/scorecard.py").run()
    at.session_state["scorecard_repeatability"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    next(b for b in at.button if b.label.endswith("on Metrics")).click().run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart")[0].proto.spec and "Repeatability" in at.get("plotly_chart")[0].proto.spec


def test_a_metrics_click_on_randomization_carries_its_state(app_workspace, monkeypatch):
    """A point of a randomization criterion (scored at the fully randomized state) opens the Randomization
    page on that image, with that method and at that state; other criteria open the explorer."""
    from trust_core.report.report import pseudonym

    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/metrics.py").run()
    table = Workspace(app_workspace).table("rsna", "randomization")
    image, last = table.image_id.iloc[0], int(table.state_index.max())
    shown = pseudonym(image, app_workspace)  # as the page names it: the workspace's key
    at.session_state["randomization"] = {"selection": {"points": [{"customdata": [shown, "ig"]}],
                                                       "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    args = viewer(at)  # now on the Randomization page
    assert args["layout"] == "states" and args["focus"]["frame"] == last
    assert "ig@0" in [p["key"] for p in args["panels"]]  # the clicked method among those played
    assert at.session_state["_image_id"] == image


def test_a_scorecard_randomization_row_opens_the_cascade_at_its_state(app_workspace, monkeypatch):
    at = start(app_workspace, monkeypatch)
    at.session_state["scorecard_randomization"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    button = next(b for b in at.button if b.label.startswith("🎲"))
    last = int(Workspace(app_workspace).table("rsna", "randomization").state_index.max())
    assert f"at state {last}" in button.label
    button.click().run()
    assert not at.exception, at.exception
    args = viewer(at)
    assert args["layout"] == "states" and args["focus"]["frame"] == last


def test_the_workbench_grid_crosses_its_choices_filters_and_exports(app_workspace, monkeypatch):
    """Images × methods × models × states: one row each, with a thumbnail and the AUPRC scikit-learn gives
    for that map; a value filter narrows it; the CSV holds the same rows."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    at = start(app_workspace, monkeypatch)
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    ws = Workspace(app_workspace)
    model = at.session_state["_model"]
    states = ws.state_names(model)[:2]
    at.multiselect(key="wb_methods").set_value(["grad", "gradcam"])
    at.multiselect(key="wb_states").set_value(states).run()
    assert not at.exception, at.exception
    grid = next(f.value for f in at.dataframe if "map" in f.value.columns)
    assert len(grid) == 1 * 2 * 1 * 2 and set(grid.state) == set(states)
    assert all(str(v).startswith("data:image/png;base64,") for v in grid["map"])
    from trust_core.report.report import pseudonym

    ids = {pseudonym(i, ws): i for i in ws.dataset("rsna").ids()}  # the grid names images by pseudonym
    row = grid[(grid.method == "Gradient") & (grid.state == "original")].iloc[0]
    maps = ws.maps("rsna", [ids[row.image]], model, methods=["grad"])
    mask = ws.dataset("rsna").mask(ids[row.image], maps["grad"].shape[1], ws.framing(model))
    expected = average_precision_score(mask.ravel().astype(int), maps["grad"][0].ravel())
    assert np.isclose(row.AUPRC, expected, atol=1e-3)
    assert any("CSV" in b.proto.label for b in at.get("download_button"))
    # states in the cascade's order (original first), methods in the registry's
    assert list(dict.fromkeys(grid.state)) == states and list(dict.fromkeys(grid.method)) == ["Gradient", "Grad-CAM"]
    # the CSV: the grid's rows, each with its provenance
    import io

    from ui.export import model_provenance, workbench_csv

    table = grid.assign(_explained="1: finding", _cascade=0, _method=0, _seed=maps.params["seed"])
    csv = pd.read_csv(io.StringIO(workbench_csv(table, dataset=ws.dataset("rsna"), preset="fast",
                                                dataset_label="rsna", provenance={model: model_provenance(ws, model)})))
    assert len(csv) == len(grid) and "map" not in csv and not any(c.startswith("_") for c in csv)
    entry = next(e for e in ws.index() if e["file"] == model)
    import json

    config = json.loads((app_workspace / "results" / "rsna" / "config.json").read_text())  # the evaluation's record
    recorded = next(m["weights_digest"] for m in config["models"] if str(m["path"]).endswith(model))
    assert (csv["weights"] == recorded[:12]).all() and (csv["noise seed"] == maps.params["seed"]).all()
    assert (csv["training seed"] == entry["seed"]).all() and (csv["preset"] == "fast").all()
    assert (csv["dataset fingerprint"] == ws.dataset("rsna").fingerprint).all()
    assert (csv["explained class"] == "1: finding").all() and csv["saliency code"].str.startswith("saliency-").all()
    at.selectbox(key="wb_filter_column").select("AUPRC").run()
    at.radio(key="wb_filter_side").set_value("≥").run()
    at.number_input(key="wb_filter_value").set_value(2.0).run()
    assert not at.exception, at.exception
    assert not any("map" in f.value.columns for f in at.dataframe)  # nothing has an AUPRC ≥ 2


def test_why_it_fails_analyzes_on_request_and_a_point_opens_its_image(app_workspace, monkeypatch, tmp_path):
    """Without an analysis the page offers to run it (nothing is computed behind the user's back); then the
    ρ table (every feature, the values of analysis.json), the scatter and the quartile bars; a clicked
    point opens its image at its method in the explorer."""
    import json
    import shutil

    from trust_core.report.report import pseudonym

    workspace = tmp_path / "ws"
    shutil.copytree(app_workspace, workspace, ignore=shutil.ignore_patterns("store"))
    at = start(workspace, monkeypatch)
    at.switch_page("pages/why.py").run()
    assert not at.exception, at.exception
    assert any("has not run yet" in i.value for i in at.info)
    assert not (workspace / "results" / "rsna" / "analysis.json").exists()
    at.button[0].click().run()
    assert not at.exception, at.exception
    analysis = json.loads((workspace / "results" / "rsna" / "analysis.json").read_text())
    table = at.dataframe[0].value
    assert list(table.columns[3:8]) == ["instances", "relative size", "elongation", "irrectangularity",
                                        "model confidence"]
    gradcam = analysis["criteria"]["utility"]["methods"]["gradcam"]["spearman"]["relative_size"]
    row = table[table.method == "Grad-CAM"].iloc[0]
    if gradcam["rho"] != gradcam["rho"]:
        assert row["relative size"] == "—"
    elif gradcam["n"] < 10:  # a handful of images: ρ, said to be without CI or test (never "[+nan, +nan]")
        assert row["relative size"] == (f"{gradcam['rho']:+.2f} ({gradcam['n']} images: too few for a CI or a test, "
                                        f"which need 10)")
    else:
        assert row["relative size"] == f"{gradcam['rho']:+.2f} [{gradcam['ci_low']:+.2f}, {gradcam['ci_high']:+.2f}]"
    assert len(at.get("plotly_chart")) == 2  # the scatter and the quartile bars
    image = Workspace(workspace).table("rsna", "analysis_features").image_id.iloc[0]
    at.session_state["why_scatter"] = {"selection": {"points": [{"customdata": [pseudonym(image, workspace), "gradcam"]}],
                                                     "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["_image_id"] == image and at.session_state["_explorer_method"] == "gradcam"
    assert viewer(at)  # the explorer's viewer


def test_every_url_path_is_its_page_file_name():
    """Streamlit routes a first visit to /<name> by the pages/ folder's file names before app.py declares
    the navigation: a url path that is no file's name showed 'Page not found' over the page (a deep link
    to /reports did, in Chromium)."""
    assert all(Path(spec.path).stem == spec.url_path for spec in SPECS)
