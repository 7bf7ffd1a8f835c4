"""The four criteria end to end on phantom data with tiny models (fast, low-sample parameters)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from trust_core.cache import Store
from trust_core.evaluate import EvalConfig, Evaluation, evaluate
from trust_core.models import TrainConfig, train_classifier
from trust_core.models.localizer import train_localizer

from ..helpers import decided

FAST = dict(n_samples=2, smooth_ig_steps=2, ig_steps=3, xrai_steps=3)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, rsna):
    root = tmp_path_factory.mktemp("eval")
    models = []
    for arch, seed in (("densenet_tiny", 0), ("densenet_tiny", 1), ("resnet_tiny", 0)):
        cfg = TrainConfig(arch=arch, seed=seed, epochs=1, batch_size=8, image_size=64)
        models.append(train_classifier(rsna, cfg, root / f"{arch}_{seed}.pt").path)
    localizers = [root / f"unet_{s}.pt" for s in (0, 1)]
    for seed, path in zip((0, 1), localizers):
        train_localizer(rsna, path, size=64, seed=seed, epochs=1)
    return root, models, localizers


def config(**kw):
    kw.setdefault("methods", ("grad", "gbp", "gradcam", "xrai"))
    return EvalConfig(preset="fast", overrides=FAST, ssim_images=4, baseline_pairs=3, group=3, **kw)


def test_all_criteria_with_baselines(workspace, rsna, tmp_path):
    root, models, localizers = workspace
    result = evaluate(rsna, models, config(), localizers=localizers, cache=Store(tmp_path / "store"),
                      out=tmp_path / "out")
    s = result.summary["criteria"]
    assert set(s) == {"utility", "randomization", "repeatability", "reproducibility"}
    utility = s["utility"]
    assert utility["n_images"] == len(rsna.ids(split="test", label=1))
    table = result.tables["utility"]
    base = result.tables["utility_baselines"].pivot(index="image_id", columns="baseline", values="auprc")
    for method in ("grad", "gbp", "gradcam", "xrai"):
        entry = utility["methods"][method]
        values = table[table.method == method].set_index("image_id").auprc
        paired = values.notna()
        # every figure restated from the per-image tables, over the same images on both sides
        assert entry["mean"] == pytest.approx(values[paired].mean())
        assert entry["baseline_low"] == pytest.approx(base.average_mask[values.index[paired]].mean())
        assert entry["baseline_high"] == pytest.approx(base.localizer[values.index[paired]].mean())
        difference = (values - base.average_mask[values.index])[paired]
        low, high = entry["difference_ci"]
        assert low <= difference.mean() <= high and entry["difference"] == pytest.approx(difference.mean())
        expected = decided("pass" if low > 0 else "fail" if high < 0 else "inconclusive", entry["n_paired"])
        assert entry["verdict"] == expected
        assert entry["paper_rule"] == ("pass" if entry["mean"] > entry["baseline_low"] else "fail")
        assert entry["p_vs_low"] <= entry["p_vs_low_holm"] <= 1 and entry["p_vs_high_holm"] >= entry["p_vs_high"]
    xrai_rows = table[table.method == "xrai"]
    assert xrai_rows.xrai_negative_fraction.between(0, 1).all()
    assert table[table.method == "grad"].xrai_negative_fraction.isna().all()
    # utility of every model and state: replicates, the other architecture, the randomized states
    by_model = pd.DataFrame(utility["by_model"])
    assert {"densenet_tiny#0", "densenet_tiny#1", "resnet_tiny#2"} <= set(by_model.model)
    assert {"original", "classifier", "stem"} <= set(by_model[by_model.model == "densenet_tiny#0"].state)
    randomization = s["randomization"]["methods"]["grad"]
    assert len(randomization["curve"]) == 9 and randomization["final_state"] == "stem"
    # the decision restated from the per-image tables: final-state SSIM and random-pair baseline, each
    # the mean over the same two replicates, paired per image; the verdict from a bootstrap of that
    from trust_core.metrics import bootstrap_ci
    rt, bt = result.tables["randomization"], result.tables["randomization_baseline"]
    final = rt[(rt.method == "grad") & (rt.state == "stem")].groupby("image_id").ssim.mean()
    base = bt[bt.method == "grad"].groupby("image_id").ssim.mean()
    difference = (final - base[final.index]).dropna()
    assert randomization["difference"] == pytest.approx(difference.mean())
    assert randomization["baseline"] == pytest.approx(base[difference.index].mean())
    low, high = bootstrap_ci(difference.to_numpy(), seed=0)
    assert randomization["difference_ci"] == pytest.approx([low, high])
    assert randomization["verdict"] == decided("pass" if high < 0 else "fail" if low > 0 else "inconclusive",
                                               randomization["n_paired"])
    assert s["repeatability"]["pairs"] == ["densenet_tiny#0 vs densenet_tiny#1"]
    assert s["reproducibility"]["pairs"] == ["densenet_tiny#0 vs resnet_tiny#2"]
    agreement = result.tables["localizer_agreement"]
    assert s["repeatability"]["baseline"]["mean"] == pytest.approx(agreement.ssim.mean())
    assert s["repeatability"]["baseline_pair"] == "localizer unet_0.pt vs localizer unet_1.pt"
    for name in ("utility.parquet", "utility.csv", "randomization.parquet", "randomization_baseline.csv",
                 "repeatability.csv", "reproducibility.parquet", "localizer_agreement.csv", "summary.json",
                 "config.json", "utility_by_model.parquet"):
        assert (tmp_path / "out" / name).is_file(), name
    table = pd.read_parquet(tmp_path / "out" / "randomization.parquet")
    assert set(table.model) == {0, 1}  # both replicates of the main architecture are randomized
    assert table.ssim.dropna().between(-1, 1).all() and table.ssim.notna().mean() > 0.5
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["params"]["preset"] == "fast" and "torch" in cfg["versions"] and len(cfg["models"]) == 3
    assert cfg["dataset"]["classes"] == ["Normal", "Lung Opacity"] and cfg["dataset"]["mask_rule"] == "paper"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for criterion in s:
        for entry in summary["criteria"][criterion]["methods"].values():
            assert entry["verdict"] in ("pass", "fail", "inconclusive")


def test_average_mask_baseline_is_a_fixed_prior(workspace, rsna, tmp_path):
    _, models, _ = workspace
    result = evaluate(rsna, models[:1], config(criteria=("utility",)), cache=Store(tmp_path / "s"))
    base = result.tables["utility_baselines"]
    assert set(base.baseline) == {"average_mask"}  # no localizer given: no high baseline
    assert result.summary["criteria"]["utility"]["methods"]["grad"]["baseline_high"] is None


def test_resume_gives_identical_results_and_computes_nothing_twice(workspace, rsna, tmp_path):
    root, models, localizers = workspace
    store = Store(tmp_path / "store")
    light = dict(methods=("grad", "gbp"), criteria=("utility", "randomization", "repeatability"))
    evaluation = Evaluation(rsna, models[:2], config(**light), localizers=localizers, cache=store)
    units = evaluation.units()
    # "Interrupt" after half of the units: only those reached the cache.
    from trust_core.evaluate import run_units_local
    half = units[: len(units) // 2]
    run_units_local(evaluation, half)
    resumed = Evaluation(rsna, models[:2], config(**light), localizers=localizers, cache=store).run()
    assert resumed.stats["cached_images"] >= sum(len(u.image_ids) for u in half)
    fresh = Evaluation(rsna, models[:2], config(**light), localizers=localizers, cache=Store(tmp_path / "other")).run()
    assert fresh.stats["cached_images"] == 0
    for name, table in fresh.tables.items():
        pd.testing.assert_frame_equal(table, resumed.tables[name], check_exact=False, rtol=1e-6)
    again = Evaluation(rsna, models[:2], config(**light), localizers=localizers, cache=store).run()
    assert again.stats["passes"] == 0 and again.stats["cached_images"] == again.stats["image_maps"]


def test_kill_9_then_resume(workspace, rsna, tmp_path):
    """A real `kill -9` of `trust evaluate`; the rerun completes with the same summary as a clean run."""
    root, models, localizers = workspace
    args = [sys.executable, "-m", "trust_core.cli", "evaluate", "--dataset", f"rsna:{rsna.root}", "--preset", "fast",
            "--methods", "grad", "gbp", "xrai", "--ssim-images", "4", "--baseline-pairs", "3", "--group", "2",
            "--criteria", "utility", "randomization"] + sum([["--model", str(m)] for m in models[:1]], []) + \
        [f"--set={k}={v}" for k, v in FAST.items()]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    cache = tmp_path / "store"
    proc = subprocess.Popen(args + ["--cache", str(cache), "--out", str(tmp_path / "a")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time
    deadline = time.time() + 120
    while time.time() < deadline and not (cache / "cache.db").exists():
        time.sleep(0.2)
    while time.time() < deadline and len(Store(cache)) < 3:
        time.sleep(0.2)
    proc.kill()  # SIGKILL
    proc.wait()
    entries = len(Store(cache))
    assert entries >= 3
    done = subprocess.run(args + ["--cache", str(cache), "--out", str(tmp_path / "a")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    clean = subprocess.run(args + ["--no-cache", "--out", str(tmp_path / "b")], env=env, capture_output=True,
                           text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-2000:]
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert a["stats"]["cached_images"] > 0
    for criterion in ("utility", "randomization"):
        for method, entry in a["criteria"][criterion]["methods"].items():
            assert entry["mean"] == pytest.approx(b["criteria"][criterion]["methods"][method]["mean"], abs=1e-6)


def test_adebayo_finding_gbp_survives_logit_randomization(rsna, tmp_path):
    """After re-initializing only the logits, Guided Backprop maps stay far more similar to the original
    than gradient maps do (Adebayo et al. 2018), on a trained model."""
    from trust_core import explain
    from trust_core.data import to_model_input
    from trust_core.metrics import ssim_batch
    from trust_core.randomization import cascade
    cfg = TrainConfig(arch="densenet_tiny", seed=0, epochs=6, batch_size=8, image_size=64)
    model_path = train_classifier(rsna, cfg, tmp_path / "trained.pt").path
    from trust_core.models import load
    model = load(model_path)
    ids = rsna.ids(label=1)[:6]
    x = torch.stack([to_model_input(rsna.image(i, 64)) for i in ids])
    states = dict(list(cascade(model))[:2])
    after = explain(states["classifier"], x, methods=["grad", "gbp"], target=0)
    before_t = explain(states["original"], x, methods=["grad", "gbp"], target=0)
    s = {m: ssim_batch(torch.from_numpy(before_t[m]), torch.from_numpy(after[m])).mean().item() for m in ("grad", "gbp")}
    assert s["gbp"] > s["grad"] + 0.1, s


def test_bad_configuration(rsna, workspace):
    _, models, _ = workspace
    from trust_core.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown criteria"):
        Evaluation(rsna, models, EvalConfig(criteria=("beauty",)))
    with pytest.raises(ConfigError, match="at least one model"):
        Evaluation(rsna, [], EvalConfig())


def test_random_pair_baseline_uses_the_same_replicates_as_the_states(workspace, rsna, tmp_path):
    """The per-image baseline is the mean over replicates of each replicate's own original-map pairs;
    SSIM restated with scikit-image's structural_similarity (data_range 2, the paper's)."""
    from skimage.metrics import structural_similarity

    from trust_core import explain
    from trust_core.data import to_model_input
    from trust_core.models import load
    _, models, _ = workspace
    store = Store(tmp_path / "s")
    cfg = config(methods=("grad",), criteria=("randomization",))
    evaluation = Evaluation(rsna, models[:2], cfg, cache=store)
    result = evaluation.run()
    ids, partners = evaluation.ssim_ids, evaluation.partners()
    x = torch.stack([to_model_input(rsna.image(i, 64)) for i in ids])
    per_replicate = []
    for path in models[:2]:
        maps = explain(load(path), x, methods=["grad"], preset="fast", cache=store, **FAST)["grad"]
        per_replicate.append([np.mean([structural_similarity(maps[k], maps[j], data_range=2.0)
                                       for j in partners[k]]) for k in range(len(ids))])
    expected = np.mean(per_replicate, axis=0)
    table = result.tables["randomization_baseline"]
    assert set(table.model) == {0, 1}
    got = table.groupby("image_id").ssim.mean().reindex(ids).to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    entry = result.summary["criteria"]["randomization"]["methods"]["grad"]
    assert entry["baseline"] == pytest.approx(expected.mean(), abs=1e-6)


def test_independent_mode_verdict_means_every_block(workspace, rsna, tmp_path):
    _, models, _ = workspace
    result = evaluate(rsna, models[:1], config(methods=("grad", "gbp"), criteria=("randomization",),
                                               randomization_mode="independent"), cache=Store(tmp_path / "s"))
    block = result.summary["criteria"]["randomization"]
    assert block["mode"] == "independent" and "every block" in block["rule"]
    for method, entry in block["methods"].items():
        states = entry["states"]
        assert len(states) == 9  # one per block of densenet_tiny (curve of 9 states), each randomized alone
        verdicts = {s["verdict"] for s in states.values()}
        expected = "fail" if "fail" in verdicts else "pass" if verdicts == {"pass"} else "inconclusive"
        assert entry["verdict"] == expected
        # the headline is the least sensitive block, not the last one in the list
        assert entry["final_state"] == max(states, key=lambda s: states[s]["mean"])
        assert entry["mean"] == pytest.approx(states[entry["final_state"]]["mean"])
    cascading = evaluate(rsna, models[:1], config(methods=("grad",), criteria=("randomization",)),
                         cache=Store(tmp_path / "s"))
    assert cascading.summary["criteria"]["randomization"]["methods"]["grad"]["final_state"] == "stem"


def test_localizer_maps_are_normalized_and_paired_by_kind(workspace, rsna, tmp_path):
    """User score maps that are an affine transform of the localizers' own maps score exactly like
    them (min–max normalization), and two map folders pair with each other, not with a checkpoint."""
    from trust_core.data import to_model_input
    from trust_core.models.localizer import load_localizer, predict_maps
    _, models, localizers = workspace
    ids = sorted(set(rsna.ids(split="test", label=1)))
    folders = []
    for k, path in enumerate(localizers):
        model = load_localizer(path)
        maps = predict_maps(model, torch.stack([to_model_input(rsna.image(i, 64)) for i in ids]))
        folder = tmp_path / f"maps{k}"
        folder.mkdir()
        for i, m in zip(ids, maps):
            np.save(folder / f"{i}.npy", 7.0 * m + 3.0)
        folders.append(folder)
    cfg = config(methods=("grad",), criteria=("utility", "repeatability"))
    store = Store(tmp_path / "s")
    by_checkpoints = evaluate(rsna, models[:2], cfg, localizers=localizers, cache=store)
    by_maps = evaluate(rsna, models[:2], cfg, localizer_maps=folders, localizers=localizers[:1], cache=store)
    mixed = evaluate(rsna, models[:2], cfg, localizer_maps=folders[:1], localizers=localizers, cache=store)
    u = [r.summary["criteria"]["utility"]["baselines"]["localizer"]["mean"] for r in (by_checkpoints, by_maps, mixed)]
    assert u[0] == pytest.approx(u[1], abs=1e-6) and u[0] == pytest.approx(u[2], abs=1e-6)
    assert by_maps.summary["criteria"]["utility"]["high_baseline_source"] == "score maps maps0"
    r = [x.summary["criteria"]["repeatability"] for x in (by_checkpoints, by_maps, mixed)]
    assert r[1]["baseline_pair"] == "score maps maps0 vs score maps maps1"
    assert r[2]["baseline_pair"] == "localizer unet_0.pt vs localizer unet_1.pt"  # not maps0 vs unet_1
    assert r[0]["baseline"]["mean"] == pytest.approx(r[1]["baseline"]["mean"], abs=1e-5)
    assert r[2]["baseline"]["mean"] == pytest.approx(r[0]["baseline"]["mean"], abs=1e-9)
    # a bad localizer is refused when the evaluation is made, before any unit runs (it used to be read
    # only after every unit's passes: hours on a real dataset)
    from trust_core.errors import CheckpointError, ConfigError
    from trust_core.evaluate.run import Evaluation

    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    for f in list(folders[0].iterdir())[1:]:
        (incomplete / f.name).write_bytes(f.read_bytes())
    refusals = [(dict(localizers=[tmp_path / "none.pt"]), CheckpointError, "checkpoint file not found"),
                (dict(localizers=[models[0]]), CheckpointError, "not 'unet'"),
                (dict(localizer_maps=[tmp_path / "nowhere"]), ConfigError, "no such folder of score maps"),
                (dict(localizer_maps=[incomplete]), ConfigError, "1 image\\(s\\) have no localizer score map")]
    for kwargs, error, said in refusals:
        with pytest.raises(error, match=said):
            Evaluation(rsna, models[:2], cfg, cache=store, **kwargs)
    Evaluation(rsna, models[:2], config(methods=("grad",), criteria=("randomization",)), localizer_maps=[incomplete],
               cache=store)  # a criterion that reads no localizer: its folder is not checked for maps
