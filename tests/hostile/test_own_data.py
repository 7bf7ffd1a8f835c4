"""A researcher's own data (issue 27), beyond the single-file corpus: what `trust check` and `trust inspect` say
about films and models, the output and cache folders refused before any work, results folders never mixed,
unreadable films skipped and counted, and verdicts that say their n.

Every input is a few 64×64 (or smaller) films and a tiny model."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from trust_core.cli import main

from .corpus import RSNA_HEADER, _folder, _pixels, _png16, _rsna, _spec

FLAT_NET = '''
import torch


class Net(torch.nn.Module):
    """A small CNN whose input can be scaled (1e-9: outputs that no longer depend on the film) and whose
    logits can be shifted (30: a sigmoid saturated at 1)."""

    def __init__(self, num_classes=2, scale=1.0, shift=0.0):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, num_classes)
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x * self.scale)).mean((2, 3))) + self.shift


def net(**kwargs):
    torch.manual_seed(0)
    return Net(**kwargs)
'''


def _run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from trust_core.models import build, save

    folder = tmp_path_factory.mktemp("models")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(save(build("resnet_tiny"), folder / f"tiny{seed}.pt", arch="resnet_tiny",
                          meta={"input_size": 32}))
    return paths


@pytest.fixture
def flat_net(tmp_path, monkeypatch):
    (tmp_path / "flatnet.py").write_text(FLAT_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _dataset_with_a_bad_film(folder):
    """RSNA's layout: films a, b (train) and c, d (test positives); d's DICOM is cut short."""
    info = _rsna(RSNA_HEADER + "a,1,1,20,20,1\nb,,,,,0\nc,5,5,30,30,1\nd,4,4,20,20,1\n", ids=("a", "b", "c", "d"))(folder)
    bad = folder / "stage_2_train_images" / "d.dcm"
    bad.write_bytes(bad.read_bytes()[:300])
    (folder / "splits.csv").write_text("image_id,split\na,train\nb,train\nc,test\nd,test\n")
    return info


def test_one_detector_one_depth_a_dim_film_is_not_read_brighter(tmp_path, capsys):
    """Two 16-bit PNGs of one 12-bit detector, one of them dim (max 999 < 1024): each alone would be read at
    the depth its values need (10 and 12 bits, the dim one 4× brighter); the dataset reads both as 12-bit
    and says so."""
    from trust_core.data import open_dataset

    info = _folder(mask_shape=(64, 48), film_shape=(64, 48))(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(500, 4000, (64, 48), dtype=np.uint16)).save(tmp_path / "images" / "film1.png")
    Image.fromarray(rng.integers(100, 1000, (64, 48), dtype=np.uint16)).save(tmp_path / "images" / "film2.png")
    dim = int(np.asarray(Image.open(tmp_path / "images" / "film2.png")).max())
    code, _, err = _run(capsys, "check", "--dataset", info["dataset"])
    assert code == 0, err
    assert re.search(r"^warning: \S+: films of this dataset need different depths by their values \(10-bit: 1, "
                     r"12-bit: 1\): one detector has one depth, so all are read as 12-bit .*e\.g\. film2", err, re.M), err
    dataset = open_dataset(info["dataset"], image_size=32)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = dataset.native_image("film2").max()
        dataset.screen(dataset.ids())
        together = dataset.native_image("film2").max()
    assert alone == pytest.approx(dim / 1023, abs=1e-6) and together == pytest.approx(dim / 4095, abs=1e-6)
    assert dataset.film_depth == 12


def test_a_mask_of_another_size_on_a_training_film_is_found_before_the_work(tmp_path, capsys):
    """The average-mask baseline reads every train and val mask: a transposed one used to stop the run after
    all its maps were computed. Now it is found first: skipped and listed (or refused with --strict)."""
    import torch

    from trust_core.models import build, save

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ids = [f"f{k}" for k in range(6)]
    for k, image_id in enumerate(ids):
        Image.fromarray(_pixels((64, 48), np.uint8, 255, seed=k)).save(root / "images" / f"{image_id}.png")
        mask = np.zeros((48, 64) if image_id == "f0" else (64, 48), np.uint8)
        mask[5:20, 5:25] = 255
        Image.fromarray(mask).save(root / "masks" / f"{image_id}.png")
    (root / "labels.csv").write_text("image_id,label\n" + "".join(f"{i},1\n" for i in ids))
    (root / "splits.csv").write_text("image_id,split\nf0,train\nf1,train\nf2,val\nf3,test\nf4,test\nf5,test\n")
    torch.manual_seed(0)
    model = save(build("resnet_tiny"), tmp_path / "m.pt", arch="resnet_tiny", meta={"input_size": 32})
    before = (root / "masks" / "f0.png").read_bytes()
    args = ["evaluate", "--dataset", f"folder:{root}", "--model", model, "--preset", "fast", "--methods", "grad",
            "--criteria", "utility", "--no-cache", "--out", tmp_path / "out"]
    code, _, err = _run(capsys, *args, "--strict")
    assert code == 2 and re.search(r"^error: f0\.png: .*the mask is transposed.* \(--strict: a ground truth that cannot "
                                   r"be used stops the run", err, re.M), err
    assert not (tmp_path / "out").exists()
    code, _, err = _run(capsys, *args)
    assert code == 0, err
    assert re.search(r"^  f0: f0\.png: image 'f0': its mask masks/f0\.png is 64×48 .*the mask is transposed.*a corrected "
                     r"copy", err, re.M), err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dataset"]["skipped"]["unusable ground truth"] == 1 and list(summary["dataset"]["unreadable"]) == ["f0"]
    assert (root / "masks" / "f0.png").read_bytes() == before


def _evaluate_args(dataset, models, out, *extra):
    return ["evaluate", "--dataset", dataset, *sum((["--model", str(m)] for m in models), []), "--preset", "fast",
            "--methods", "grad", "--criteria", "utility", "repeatability", "--ssim-images", "2", "--baseline-pairs",
            "1", "--no-cache", "--set=n_samples=2", "--out", str(out), *extra]


# -- trust check / trust inspect ------------------------------------------------------------------------------
def test_check_lists_films_read_at_an_inferred_depth(tmp_path, capsys):
    info = _folder(mask_shape=(64, 64), film_shape=(64, 64))(tmp_path)
    _png16("film1.png", 4096)(tmp_path / "images")  # a 12-bit detector's values in a 16-bit PNG
    code, out, err = _run(capsys, "check", "--dataset", info["dataset"])
    assert code == 0, err
    assert re.search(r"^warning: film1\.png: a 16-bit image whose values all stay below 4096 \(max \d+\): read as "
                     r"12-bit \(÷ 4095\), not ÷ 65535", err, re.M), err
    assert "0 with problems" in out and "1 film warnings" in out
    assert not (tmp_path / "splits.csv").exists()  # check reads the dataset folder, never writes into it


def test_inspect_says_the_depths_it_inferred_and_writes_nothing(tmp_path, capsys, flat_net):
    info = _folder(mask_shape=(64, 64), film_shape=(64, 64))(tmp_path / "data")
    _png16("film1.png", 4096)(tmp_path / "data" / "images")
    model = _spec(tmp_path, "m.toml", {"source": "flatnet:net", "preprocessing": {"size": 32, "normalization": "paper"}})
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    code, out, err = _run(capsys, "inspect", "--model", model, "--dataset", info["dataset"])
    assert re.search(r"^warning +film1\.png: a 16-bit image whose values all stay below 4096 .*read as 12-bit", out,
                     re.M), out
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before  # no splits.csv made there


def test_check_on_a_big_tree_groups_problems_and_lists_every_one(tmp_path, capsys):
    """140 films, 25 of them cut short and 4 listed but missing: `trust check` reads them on two processes,
    prints one line per reason (with a count and examples) instead of 25, and its CSV holds every problem and
    every missing film; one process finds the same."""
    import csv as csv_module

    ids = [f"f{k:03d}" for k in range(140)]  # three chunks of films: two processes read them
    rows = "".join(f"{i},2,2,10,10,1\n" if k % 2 else f"{i},,,,,0\n" for k, i in enumerate(ids))
    missing = "".join(f"gone{k},,,,,0\n" for k in range(4))
    info = _rsna(RSNA_HEADER + rows + missing, ids=tuple(ids))(tmp_path / "data")
    for image_id in ids[:25]:
        path = tmp_path / "data" / "stage_2_train_images" / f"{image_id}.dcm"
        path.write_bytes(path.read_bytes()[:300])

    def run(workers):
        out_csv = tmp_path / f"check{workers}.csv"
        code, out, err = _run(capsys, "check", "--dataset", info["dataset"], "--workers", str(workers), "--csv", out_csv)
        with open(out_csv, newline="") as fh:
            return code, out, err, sorted(tuple(r.values()) for r in csv_module.DictReader(fh))

    code, out, err, table = run(2)
    assert code == 2
    assert re.search(r"^error: 25 films: the DICOM file has no pixel data: it is truncated.* \(e\.g\. f000\.dcm, f001\.dcm, "
                     r"f002\.dcm\)$", err, re.M), err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1  # one line, not 25
    assert re.search(r"^note: 4 skipped: labels without an image file \(e\.g\. gone0, gone1, gone2\)", err, re.M), err
    assert "25 with problems" in out and "on 2 workers" in out and re.search(r"wrote all \d+ problems, skips and "
                                                                              r"warnings to .*check2\.csv", out)
    errors = [r for r in table if r[2] == "error"]
    assert [r[0] for r in errors] == ids[:25] and all(r[1] == f"{r[0]}.dcm" for r in errors)
    assert sorted(r[0] for r in table if r[2] == "skipped") == ["gone0", "gone1", "gone2", "gone3"]
    assert run(1)[3] == table  # one process: the same findings
    # no more processes than chunks of films to read: 140 films are 3 chunks, whatever --workers asks
    assert "on 3 workers" in run(60)[1]
    assert not (tmp_path / "data" / "splits.csv").exists()


def test_check_and_inspect_run_the_model_on_the_films(tmp_path, capsys, flat_net):
    info = _folder(mask_shape=(64, 64), film_shape=(64, 64))(tmp_path / "data")
    flat = _spec(tmp_path, "flat.toml", {"source": "flatnet:net", "source_kwargs": {"scale": 1e-9},
                                         "preprocessing": {"size": 32, "normalization": "paper"}})
    code, out, err = _run(capsys, "check", "--dataset", info["dataset"], "--model", flat)
    assert code == 2, err
    assert re.search(r"^error: model .*flat\.toml: the model gives the same outputs for 2 different films", err, re.M)
    assert "model " in out and "1 problems" in out
    code, out, err = _run(capsys, "inspect", "--model", flat, "--dataset", info["dataset"])
    assert code == 2 and re.search(r"^error +the model gives the same outputs for 2 different films", out, re.M), out
    saturated = _spec(tmp_path, "hot.toml", {"source": "flatnet:net", "source_kwargs": {"shift": 30.0}, "target": 0,
                                             "preprocessing": {"size": 32}, "outputs": {"activation": "sigmoid"}})
    code, out, err = _run(capsys, "check", "--dataset", info["dataset"], "--model", saturated)
    assert code == 0, err  # a warning: probably wrong, said, not refused
    assert re.search(r"^warning: model .*hot\.toml: the model's sigmoid output for .* is saturated at 1 on all 2 "
                     r"films checked", err, re.M), err
    code, out, err = _run(capsys, "inspect", "--model", saturated)
    assert code == 0 and "films      not checked: add --dataset" in out


def test_inspect_says_a_torchxrayvision_model_needs_xrv_normalization(tmp_path, capsys):
    pytest.importorskip("torchxrayvision")
    from .corpus import _xrv

    info = _xrv("unit")(tmp_path)
    code, out, err = _run(capsys, "inspect", "--model", info["model"])
    assert code == 0, err
    assert re.search(r"^warning +normalization 'unit' gives inputs in \[0, 1\], but torchxrayvision's models are "
                     r"trained on one channel in \[-1024, 1024\] .*Set normalization = \"xrv\"", out, re.M), out
    info = _xrv("xrv")(tmp_path)
    assert "normalization 'xrv' gives" not in _run(capsys, "inspect", "--model", info["model"])[1]


def test_a_wrapper_prefix_stripped_too_eagerly_is_restored():
    """A wrapper that keeps its network under ``model.`` (torchxrayvision's ResNet does): the shared
    ``model.`` stripping must not make its weights unloadable."""
    from trust_core.models.spec import adapt_keys

    expected = {"model.conv1.weight": torch.zeros(1), "model.fc.weight": torch.zeros(1)}
    state, notes = adapt_keys({"conv1.weight": torch.ones(1), "fc.weight": torch.ones(1)}, expected)
    assert set(state) == set(expected) and notes == ["restored the prefix 'model.'"]


def test_film_findings_narrow_inputs_and_non_finite_outputs():
    """What one forward pass on the films finds: films that reach the model in a sliver of its input range (a
    warning), outputs that are not finite (a problem: the maps would be meaningless)."""
    from trust_core.models.info import tag
    from trust_core.models.sanity import film_findings

    class Net(torch.nn.Module):
        def __init__(self, nan=False):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)
            self.nan = nan

        def forward(self, x):
            out = self.fc(x.mean((2, 3)))
            return out * float("nan") if self.nan else out

    def tiny(nan=False):
        return tag(Net(nan), input_size=16).eval()  # the paper's preprocessing at 16 px

    rng = np.random.default_rng(0)
    uniform = {f"f{k}": (0.5 + 0.001 * rng.random((20, 20))).astype(np.float32) for k in range(3)}
    problems, notes = film_findings(tiny(), uniform)
    assert not problems and len(notes) == 1
    assert re.fullmatch(r"the 3 films checked reach the model in \[\S+, \S+\], 0\.\d % of the range its "
                        r"normalization \(.*\) gives: are the films almost black or uniform \(their bit depth or "
                        r"window\)\?", notes[0]), notes[0]
    films = {f"f{k}": rng.random((20, 20)).astype(np.float32) for k in range(3)}
    problems, _ = film_findings(tiny(nan=True), films)
    assert problems == ["the model's outputs are not finite on 3 of 3 films (e.g. ['f0', 'f1', 'f2'])"]


def test_a_target_named_as_the_dataset_names_it_gets_the_models_name():
    from types import SimpleNamespace

    from trust_core.errors import ConfigError
    from trust_core.models.spec.load import _resolve_target

    classes = ("Atelectasis", "Infiltration", "Lung Opacity")

    def target_index(target):
        return _resolve_target(SimpleNamespace(target=target, activation="sigmoid"), classes, 3, "m.toml")

    assert target_index("infiltration") == 1  # case does not matter
    with pytest.raises(ConfigError, match=r"target 'Infiltrate' is not among the outputs \(did you mean "
                                          r"'Infiltration'\?\)"):
        target_index("Infiltrate")
    with pytest.raises(ConfigError, match=r"target 'Airspace Opacity' .*\(did you mean 'Lung Opacity'\?\)"):
        target_index("Airspace Opacity")
    with pytest.raises(ConfigError, match=r"target 'Mass' is not among the outputs; choose one of"):
        target_index("Mass")


# -- output and cache folders ---------------------------------------------------------------------------------
def test_evaluate_refuses_an_unwritable_out_or_cache_before_any_work(tmp_path, capsys, tiny_models):
    info = _dataset_with_a_bad_film(tmp_path / "data")
    (tmp_path / "notes.txt").write_text("mine\n")
    for out, pattern in ((tmp_path / "notes.txt", r"--out .*notes\.txt is a file, not a folder"),
                         (tmp_path / "notes.txt" / "results", r"--out .*results cannot be created: .*notes\.txt is a file"),
                         ("/proc/trust-results", r"--out /proc/trust-results is not writable: /proc refuses new files")):
        code, _, err = _run(capsys, *_evaluate_args(info["dataset"], tiny_models[:1], out))
        assert code == 2 and re.search(rf"^error: {pattern}", err, re.M), err
        assert "evaluate (" not in err  # nothing ran
    args = _evaluate_args(info["dataset"], tiny_models[:1], tmp_path / "results")
    args[args.index("--no-cache")] = "--cache=" + str(tmp_path / "notes.txt")
    code, _, err = _run(capsys, *args)
    assert code == 2 and re.search(r"^error: the cache folder .*notes\.txt is a file, not a folder", err, re.M), err
    assert not (tmp_path / "results").exists() and (tmp_path / "notes.txt").read_text() == "mine\n"


def test_every_writing_command_refuses_an_unwritable_output_before_any_work(tmp_path, capsys, tiny_models):
    """train, train-localizer, report, demo, bench presets: the output checked first, nothing created."""
    info = _dataset_with_a_bad_film(tmp_path / "data")
    (tmp_path / "notes.txt").write_text("mine\n")
    blocked = tmp_path / "notes.txt"
    cases = [
        (["train", "--dataset", info["dataset"], "--arch", "resnet_tiny", "--out", blocked / "m.pt", "--epochs", "1"],
         r"--out m\.pt: its folder .*notes\.txt cannot be created: .*notes\.txt is a file|--out .*m\.pt: its folder"),
        (["train-localizer", "--dataset", info["dataset"], "--out", blocked / "u.pt", "--epochs", "1"],
         r"--out u\.pt: its folder"),
        (["report", "--workspace", tmp_path / "ws", "--cohort", "--out", blocked / "c.zip"], r"--out c\.zip: its folder"),
        (["report", "--workspace", tmp_path / "ws", "--cohort", "--out", tmp_path], r"--out .* is a folder: give a file name"),
        (["demo", "--workspace", blocked / "ws"], r"--workspace .*ws cannot be created: .*notes\.txt is a file"),
        (["bench", "presets", "--workspace", blocked / "ws"], r"preset figures .*cannot be created: .*notes\.txt is a file"),
    ]
    for args, pattern in cases:
        code, out, err = _run(capsys, *args)
        assert code == 2 and re.search(rf"^error: .*(?:{pattern})", err, re.M), (args[0], err)
        assert "epoch" not in err + out and "evaluate (" not in err  # nothing ran
    assert (tmp_path / "notes.txt").read_text() == "mine\n" and not (tmp_path / "ws").exists()


def test_a_cache_whose_database_cannot_be_opened_is_a_clear_error(tmp_path):
    """A cache folder whose sqlite database cannot be opened (here: a folder where cache.db should be) is refused
    with the fix, not an sqlite traceback."""
    from trust_core.cache import Store
    from trust_core.errors import ConfigError

    (tmp_path / "cache" / "cache.db").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"the cache folder .*cache cannot be used: .*Choose a writable folder with "
                                          r"--cache, or run with --no-cache"):
        Store(tmp_path / "cache")


def test_evaluate_skips_an_unreadable_film_refuses_mixed_folders_and_states_n(tmp_path, capsys, tiny_models):
    info = _dataset_with_a_bad_film(tmp_path / "data")
    bad = tmp_path / "data" / "stage_2_train_images" / "d.dcm"
    before = bad.read_bytes()
    out = tmp_path / "results"
    # --strict refuses the film before any work
    code, _, err = _run(capsys, *_evaluate_args(info["dataset"], tiny_models, out, "--strict"))
    assert code == 2 and re.search(r"^error: d\.dcm: .*truncated.*\(--strict: a film that cannot be read stops the "
                                   r"run", err, re.M), err
    assert not out.exists()
    # the default skips it, lists it and counts it in summary.json; the user's file is not changed
    code, printed, err = _run(capsys, *_evaluate_args(info["dataset"], tiny_models, out))
    assert code == 0, err
    assert re.search(r"^note: skipped 1 item\(s\) of .*: unreadable films", err, re.M), err
    assert re.search(r"^  d: d\.dcm: ", err, re.M) and bad.read_bytes() == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"]["skipped"]["unreadable films"] == 1 and list(summary["dataset"]["unreadable"]) == ["d"]
    assert summary["verdict_min_n"] == 6
    # n stated, and too few images never PASS or FAIL
    utility = summary["criteria"]["utility"]["methods"]["grad"]
    assert utility["n_paired"] == 1 and utility["verdict"] == "inconclusive"
    assert re.search(r"^  grad +\S+ \[\S+, \S+\] n=1 baseline \S+ +INCONCLUSIVE \(n=1 < 6: too few images to decide\) "
                     r"\(paper rule: (pass|fail) \(point estimate, n=1\)\)", printed, re.M), printed
    # repeatability without a localizer baseline says what gives one, before and after the run
    hint = r"two localizers of one kind give it — --localizer A\.pt --localizer B\.pt .* or --localizer-maps DIR1"
    assert re.search(rf"^note: repeatability will be inconclusive without a baseline: {hint}", err, re.M), err
    assert re.search(rf"^  note: repeatability has no baseline to decide against: {hint}", printed, re.M), printed
    # another run into the same folder is refused (results of other criteria would sit beside it)…
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "repeatability.csv" in first
    narrower = _evaluate_args(info["dataset"], tiny_models[:1], out)
    narrower[narrower.index("repeatability")] = "utility"
    code, _, err = _run(capsys, *narrower)
    assert code == 2 and re.search(r"^error: --out .*results already holds the results of \['utility', "
                                   r"'repeatability'\] on .*data: .* add --overwrite", err, re.M), err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    # …unless --overwrite, which replaces the folder as a whole: no table of the old run is left
    code, _, err = _run(capsys, *narrower, "--overwrite")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["criteria"]) == ["utility"]
    assert not [p for p in out.iterdir() if p.name.startswith("repeatability")]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    # a folder holding anything else is never replaced
    (out / "my-notes.txt").write_text("mine\n")
    code, _, err = _run(capsys, *narrower, "--overwrite")
    assert code == 2 and "holds files that are not evaluation results (e.g. ['my-notes.txt'])" in err, err
    assert (out / "my-notes.txt").read_text() == "mine\n"


def test_maps_with_an_unusable_cache_leaves_no_empty_out(tmp_path, capsys, tiny_models):
    info = _rsna(RSNA_HEADER + "a,1,1,20,20,1\nb,,,,,0\nc,5,5,30,30,1\n")(tmp_path / "data")
    (tmp_path / "cache").write_text("not a folder\n")
    code, _, err = _run(capsys, "maps", "--dataset", info["dataset"], "--model", tiny_models[0], "--images", "a",
                        "--methods", "grad", "--preset", "fast", "--out", tmp_path / "maps", "--cache", tmp_path / "cache")
    assert code == 2 and "the cache folder" in err and not (tmp_path / "maps").exists()


def test_write_outputs_replaces_a_results_folder_whole(tmp_path):
    """The library path (the demo, the app's jobs): one run's set of files, swapped in at once."""
    import pandas as pd

    from trust_core.errors import ConfigError
    from trust_core.evaluate.run import EvalResult, write_outputs

    def result(tables, criteria):
        return EvalResult(tables={t: pd.DataFrame({"image_id": ["a"], "value": [0.5]}) for t in tables},
                          summary={"criteria": {c: {} for c in criteria}, "criteria_run": criteria,
                                   "dataset": {"kind": "rsna"}},
                          config={"dataset": {"root": "/data", "skipped": {"unreadable films": 2},
                                              "unreadable": {"x": "x.dcm: empty"}}}, stats={"units": 1})

    out = tmp_path / "results"
    write_outputs(result(["utility", "randomization"], ["utility", "randomization"]), out)
    write_outputs(result(["utility"], ["utility"]), out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "summary.json", "utility.csv", "utility.parquet"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"]["skipped"] == {"unreadable films": 2} and summary["dataset"]["unreadable"] == {
        "x": "x.dcm: empty"}
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
    assert summary["files"] == ["config.json", "summary.json", "utility.csv", "utility.parquet"]
    # a table the set does not list is a user's file, even with a results suffix: never replaced
    (out / "mine.csv").write_text("a,b\n")
    with pytest.raises(ConfigError, match=r"holds files that are not evaluation results \(e\.g\. \['mine\.csv'\]\)"):
        write_outputs(result(["utility"], ["utility"]), out)
    (out / "mine.csv").unlink()
    (out / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ConfigError, match=r"holds files that are not evaluation results \(e\.g\. \['photo\.jpg'\]\)"):
        write_outputs(result(["utility"], ["utility"]), out)
    # a user's folder with a config.json and a table is not results: --overwrite never deletes it
    own = tmp_path / "own"
    own.mkdir()
    (own / "config.json").write_text("{}")
    (own / "data.csv").write_text("x\n1\n")
    with pytest.raises(ConfigError, match="holds files that are not evaluation results"):
        write_outputs(result(["utility"], ["utility"]), own)
    assert sorted(p.name for p in own.iterdir()) == ["config.json", "data.csv"]


# -- verdicts at tiny n -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, verdict", [(2, "inconclusive"), (5, "inconclusive"), (6, "pass")])
def test_no_verdict_below_the_minimum_n(n, verdict):
    from trust_core.metrics.stats import MIN_PAIRED_N, compare_paired

    assert MIN_PAIRED_N == 6
    baseline = np.linspace(0.1, 0.2, n)
    c = compare_paired(baseline + 0.5 + np.linspace(0, 0.01, n), baseline, better="greater")
    assert c.ci_low > 0 and c.n == n and c.verdict == verdict  # the interval lies above 0 in every case


def test_an_unreadable_film_in_a_folder_dataset_is_never_rewritten(tmp_path, capsys, tiny_models):
    """`trust maps` on a folder whose second film is an RGB JPEG renamed .png that cannot be read: listed,
    skipped, the file untouched."""
    info = _folder(mask_shape=(64, 64), film_shape=(64, 64))(tmp_path / "data")
    bad = tmp_path / "data" / "images" / "film2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    before = bad.read_bytes()
    code, out, err = _run(capsys, "maps", "--dataset", info["dataset"], "--model", tiny_models[0], "--images", "film1",
                          "film2", "--methods", "grad", "--preset", "fast", "--no-cache", "--out", tmp_path / "maps")
    assert code == 0, err
    assert re.search(r"^  film2: film2\.png: not a readable image file", err, re.M), err
    assert bad.read_bytes() == before and sorted(p.name for p in (tmp_path / "maps").iterdir()) == [
        "film1.npz", "params.json"]
    # the same settings again continue the folder (a rerun adds what is missing)…
    args = ["maps", "--dataset", info["dataset"], "--model", tiny_models[0], "--images", "film1", "--methods", "grad",
            "--preset", "fast", "--no-cache", "--out", tmp_path / "maps"]
    assert _run(capsys, *args)[0] == 0
    first = (tmp_path / "maps" / "film1.npz").read_bytes()
    # …other settings are refused: another run's maps would sit beside these
    other = [a if a != "grad" else "gradcam" for a in args]
    code, _, err = _run(capsys, *other)
    assert code == 2 and re.search(r"^error: --out .*maps holds the maps of another run \(methods differ\): "
                                   r".*add --overwrite", err, re.M), err
    assert (tmp_path / "maps" / "film1.npz").read_bytes() == first
    # --overwrite replaces the folder whole: nothing of the old run is left
    assert _run(capsys, *other, "--overwrite")[0] == 0
    import json
    assert json.loads((tmp_path / "maps" / "params.json").read_text())["methods"] == ["gradcam"]
    import numpy as np
    with np.load(tmp_path / "maps" / "film1.npz") as saved:
        assert "gradcam" in saved and "grad" not in saved
    # a folder of the user's own files is never written into, even with --overwrite
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    code, _, err = _run(capsys, *args[:-1], tmp_path / "mine", "--overwrite")
    assert code == 2 and "holds files that are not this tool's maps (e.g. ['notes.txt'])" in err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_a_film_image_of_the_wrong_depth_reaches_the_model_bright(tmp_path):
    """The 12-bit film in a 16-bit PNG is read at its depth (and warns); the same PNG declaring 16 bits is not."""
    from trust_core.data import read_image
    from trust_core.data.images import FilmWarning

    _png16("plain.png", 4096)(tmp_path)
    with pytest.warns(FilmWarning, match="read as 12-bit"):
        assert read_image(tmp_path / "plain.png").max() > 0.99
    _png16("declared.png", 4096, sbit=16)(tmp_path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FilmWarning)
        assert read_image(tmp_path / "declared.png").max() < 0.07  # declared 16-bit: taken at its word
    Image.fromarray(_pixels(dtype=np.uint16, high=65535)).save(tmp_path / "full.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FilmWarning)
        assert read_image(tmp_path / "full.png").max() > 0.99


def test_messages_say_what_is_wrong_with_the_arguments(app_workspace, tmp_path, capsys):
    """A label file given as the dataset, a misspelt split and an image the selection leaves out: each
    refusal names the real problem and its fix (they read "dataset folder not found", "no readable film" and
    "not in the dataset")."""
    import csv as csv_module

    root = app_workspace / "rsna"
    model = str(app_workspace / "models" / "rsna_densenet_tiny_s0.pt")
    code, _, err = _run(capsys, "check", "--dataset", f"rsna:{root / 'stage_2_train_labels.csv'}")
    assert code == 2 and "stage_2_train_labels.csv is a file: give the dataset's folder" in err
    code, _, err = _run(capsys, "maps", "--dataset", f"rsna:{root}", "--model", model, "--split", "tset",
                        "--out", tmp_path / "m")
    assert code == 2 and "invalid choice: 'tset' (choose from 'train', 'val', 'test')" in err
    with open(root / "stage_2_detailed_class_info.csv", newline="") as fh:
        other = next(r["patientId"] for r in csv_module.DictReader(fh) if r["class"] == "No Lung Opacity / Not Normal")
    code, _, err = _run(capsys, "maps", "--dataset", f"rsna:{root}", "--model", model, "--images", other,
                        "--methods", "grad", "--out", tmp_path / "m")
    assert code == 2 and f"{other} (class not in ['Normal', 'Lung Opacity'])" in err
    assert "selection (classes: Normal, Lung Opacity) leaves some out: widen it (--classes all)" in err
    assert not (tmp_path / "m").exists()
