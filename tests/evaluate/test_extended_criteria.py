"""The criteria beyond the paper end to end: every figure restated from the per-image tables with the
metric functions (themselves tested against Quantus, scipy, scikit-learn), the paper's four unchanged."""
import json

import numpy as np
import torch
import pytest

from trust_core.cache import Store
from trust_core.errors import ConfigError
from trust_core.evaluate import CRITERIA, EvalConfig, Evaluation, evaluate
from trust_core.evaluate.criteria import PAPER_CRITERIA, resolve_criteria
from trust_core.metrics import extra

from ..helpers import decided
from .test_evaluate import FAST, workspace  # noqa: F401  (the module's trained models)

NEW = ("pointing_game", "energy_pointing_game", "miou", "spearman", "hog", "emprt")


def config(**kw):
    return EvalConfig(preset="fast", overrides=FAST, ssim_images=4, baseline_pairs=3, group=4,
                      methods=("grad", "gradcam", "input_x_gradient"), **kw)


def test_registry_and_sets():
    assert PAPER_CRITERIA == ("utility", "randomization", "repeatability", "reproducibility")
    assert set(NEW) <= set(CRITERIA)
    assert resolve_criteria("extended") == tuple(CRITERIA)
    with pytest.raises(ValueError, match="choose from"):
        resolve_criteria(["pointing"])


def test_extended_criteria_restated_from_tables(workspace, rsna, tmp_path):  # noqa: F811
    _root, models, _localizers = workspace
    paper = evaluate(rsna, models[:2], config(criteria=("utility", "randomization")), cache=Store(tmp_path / "s"))
    result = evaluate(rsna, models[:2], config(criteria=("utility", "randomization") + NEW),
                      cache=Store(tmp_path / "s"), out=tmp_path / "out")
    s = result.summary["criteria"]
    assert set(s) == {"utility", "randomization", *NEW}
    for name in ("utility", "randomization"):  # the paper's criteria are unchanged by the others
        assert json.dumps(s[name]["methods"], sort_keys=True) == json.dumps(
            paper.summary["criteria"][name]["methods"], sort_keys=True)  # NaN-safe equality
    ev = Evaluation(rsna, models[:2], config(criteria=NEW))
    ids = ev.utility_ids
    masks = ev.masks(ids)
    prior = np.repeat(ev.prior()[None], len(ids), 0)
    for name, fn in (("pointing_game", extra.pointing_game), ("energy_pointing_game", extra.energy_pointing_game)):
        table = result.tables[name]
        base = result.tables[f"{name}_baselines"].set_index("image_id")[name]
        np.testing.assert_allclose(base.loc[ids].to_numpy(), fn(prior, masks))
        for m in ("grad", "gradcam"):
            values = table[table.method == m].set_index("image_id")[name]
            entry = s[name]["methods"][m]
            assert entry["mean"] == pytest.approx(values.mean())
            low, high = entry["difference_ci"]
            assert entry["verdict"] == decided("pass" if low > 0 else "fail" if high < 0 else "inconclusive",
                                               entry["n_paired"])
    miou = s["miou"]
    assert set(miou["thresholds"]) >= {"grad", "gradcam", "average_mask"}
    assert all(t in extra.MIOU_THRESHOLDS for t in miou["thresholds"].values())
    assert miou["tuning_images"] == len(rsna.ids(split="val", label=1))
    for name in ("spearman", "hog"):
        table = result.tables[f"randomization_{name}"]
        assert set(table.state) and table[name].dropna().between(-1 - 1e-9, 1 + 1e-9).all()
        assert s[name]["metric"] != "SSIM" and s[name]["methods"]["grad"]["paper_rule"] is None
    emprt = result.tables["emprt"]
    for m in ("grad", "gradcam"):
        per_image = emprt[emprt.method == m].groupby("image_id").emprt.mean()
        assert s["emprt"]["methods"][m]["mean"] == pytest.approx(per_image.mean())
    assert (tmp_path / "out" / "randomization_spearman.csv").exists()


def test_criteria_errors_name_the_fix(workspace, rsna):  # noqa: F811
    _root, models, _localizers = workspace
    with pytest.raises(ConfigError, match="choose from"):
        Evaluation(rsna, models[:1], config(criteria=("pointing",)))


def test_data_randomization_with_a_shuffled_label_model(workspace, rsna, tmp_path):  # noqa: F811
    """`trust train --shuffle-labels` memorizes permuted labels; the criterion compares the maps with the
    first model's, against its random-pair baseline; restated from the tables."""
    from trust_core.models import TrainConfig, train_classifier
    from trust_core.models.checkpoint import load
    from trust_core.models.info import info_of

    _root, models, _localizers = workspace
    path = tmp_path / "shuffled.pt"
    train_classifier(rsna, TrainConfig(arch="densenet_tiny", seed=0, epochs=2, batch_size=8, image_size=64,
                                       shuffle_labels=True), path)
    meta = info_of(load(path, num_classes=2)).meta
    assert meta["shuffled_labels"]["train_auc_on_shuffled_labels"] is not None
    with pytest.raises(ConfigError, match="--shuffle-labels"):
        Evaluation(rsna, models[:1], config(criteria=("data_randomization",)))
    result = evaluate(rsna, models[:1], config(criteria=("data_randomization",), shuffled_models=(str(path),)),
                      cache=Store(tmp_path / "s"))
    block = result.summary["criteria"]["data_randomization"]
    table = result.tables["data_randomization"]
    base = result.tables["data_randomization_baseline"]
    for m in ("grad", "gradcam"):
        values = table[table.method == m].set_index("image_id").ssim
        baseline = base[base.method == m].set_index("image_id").ssim
        paired = values.notna() & baseline.notna()
        entry = block["methods"][m]
        assert entry["difference"] == pytest.approx((values - baseline)[paired].mean())
        low, high = entry["difference_ci"]
        assert entry["verdict"] == decided("pass" if high < 0 else "fail" if low > 0 else "inconclusive",
                                           entry["n_paired"])
    assert result.config["models"][-1]["shuffled_labels"] and not result.config["models"][0]["shuffled_labels"]
    assert len(table) == block["n_images"] * 3 and set(table.model) == {1}  # every image × method, model 1


def test_smprt_denoises_over_cached_noisy_copies(workspace, rsna, tmp_path):  # noqa: F811
    _root, models, _localizers = workspace
    cfg = config(criteria=("smprt",), smprt_samples=3)
    ev = Evaluation(rsna, models[:2], cfg)
    noisy = [u for u in ev.units() if u.noisy_copy]
    # replicates × (original, fully randomized) × (samples − 1) copies of every SSIM image
    assert sum(len(u.image_ids) for u in noisy) == len(ev.replicates) * 2 * 2 * len(ev.ssim_ids)
    image = torch.zeros(3, 8, 8)
    image[0, 0, 0] = 2.0
    first, again = ev._smprt_noise(image, 1), ev._smprt_noise(image, 1)
    assert torch.equal(first, again) and not torch.equal(first, ev._smprt_noise(image, 2))
    store = Store(tmp_path / "s")
    result = evaluate(rsna, models[:2], cfg, cache=store)
    block = result.summary["criteria"]["smprt"]
    table = result.tables["smprt"]
    for m in ("grad", "gradcam"):
        sub = table[table.method == m].groupby("image_id")[["spearman", "baseline"]].mean()
        paired = sub.dropna()
        entry = block["methods"][m]
        assert entry["difference"] == pytest.approx((paired.spearman - paired.baseline).mean())
        low, high = entry["difference_ci"]
        assert entry["verdict"] == decided("pass" if high < 0 else "fail" if low > 0 else "inconclusive",
                                           entry["n_paired"])
    again = evaluate(rsna, models[:2], cfg, cache=store)  # resumable: every noisy map from the cache
    assert again.stats["cached_images"] == again.stats["image_maps"] and again.stats["passes"] == 0
    assert json.dumps(again.summary["criteria"]["smprt"], sort_keys=True) == json.dumps(block, sort_keys=True)
    with pytest.raises(ConfigError, match="sMPRT needs"):
        Evaluation(rsna, models[:2], config(criteria=("smprt",), smprt_samples=1))


def test_smprt_copies_explain_the_images_class(workspace, rsna):  # noqa: F811
    _root, models, _localizers = workspace
    ev = Evaluation(rsna, models[:1], config(criteria=("smprt",), smprt_samples=2))
    clean_unit = next(u for u in ev.units() if not u.noisy_copy and u.state == "original")
    noisy_unit = next(u for u in ev.units() if u.noisy_copy and u.state == "original" and u.image_ids == clean_unit.image_ids)
    model = ev.models[0]
    clean, noisy = ev.run_unit(clean_unit, model), ev.run_unit(noisy_unit, model)
    assert noisy.targets == clean.targets
    assert set(noisy.maps) == set(clean.maps) and noisy.image_ids == clean.image_ids


def test_criteria_refuse_data_that_cannot_support_them(workspace, rsna, monkeypatch):  # noqa: F811
    _root, models, _localizers = workspace
    with pytest.raises(ConfigError, match="cascading"):
        Evaluation(rsna, models[:1], config(criteria=("emprt",), randomization_mode="independent"))
    with monkeypatch.context() as patch:
        first = rsna.ids(split="test", label=1)[1]
        real_mask = type(rsna).mask
        patch.setattr(type(rsna), "mask", lambda self, i, *a, **k: real_mask(self, i, *a, **k) * (i != first))
        with pytest.raises(ConfigError, match=r"1 positive image\(s\) .* have none .*" + first):
            Evaluation(rsna, models[:1], config(criteria=("pointing_game",)))
    with monkeypatch.context() as patch:
        real_ids = type(rsna).ids
        patch.setattr(type(rsna), "ids", lambda self, split=None, label=None: [] if split == "val" and label == 1
                      else real_ids(self, split=split, label=label))
        with pytest.raises(ConfigError, match="miou .* 'val' split"):
            Evaluation(rsna, models[:1], config(criteria=("miou",)))


def test_result_types_check_every_block():
    from trust_core.evaluate.criteria import CriterionResult, MethodResult

    entry = {"mean": 0.5, "median": 0.5, "std": 0.1, "ci_low": 0.4, "ci_high": 0.6, "n": 3, "excluded": 0,
             "verdict": "pass", "paper_rule": None, "baseline": 0.2, "threshold": 0.3}
    result = MethodResult.from_entry(entry)
    assert result.details == {"baseline": 0.2, "threshold": 0.3} and result.as_dict() == entry
    block = {"metric": "IoU", "n_images": 3, "rule": "r", "methods": {"grad": entry, "gbp": None}, "thresholds": {}}
    assert CriterionResult.from_block("miou", block).as_dict() == block
    with pytest.raises(ValueError, match="lacks"):
        MethodResult.from_entry({k: v for k, v in entry.items() if k != "ci_low"})
    with pytest.raises(ValueError, match="verdict"):
        MethodResult.from_entry({**entry, "verdict": "maybe"})
    with pytest.raises(ValueError, match="unknown criterion"):
        CriterionResult.from_block("pointing", block)


def test_the_command_line_lists_and_runs_the_extended_sets(workspace, rsna, tmp_path, capsys):  # noqa: F811
    from trust_core.cli import main

    assert main(["methods"]) == 0
    listed = capsys.readouterr().out
    assert all(key in listed for key in [*CRITERIA, "lrp", "scorecam", "gradcam_pp"])
    _root, models, _localizers = workspace
    shuffled = tmp_path / "shuffled.pt"
    assert main(["train", "--dataset", f"rsna:{rsna.root}", "--arch", "densenet_tiny", "--size", "64", "--epochs", "1",
                 "--batch-size", "8", "--shuffle-labels", "--out", str(shuffled)]) == 0
    out = tmp_path / "ev"
    light = [f"{k}={v}" for k, v in FAST.items()]
    args = ["evaluate", "--dataset", f"rsna:{rsna.root}", "--model", str(models[0]), "--preset", "fast",
            "--methods", "grad", "lrp", "--criteria", "pointing_game", "emprt", "smprt", "data_randomization",
            "--shuffled-model", str(shuffled), "--smprt-samples", "2", "--limit", "4", "--ssim-images", "3",
            "--baseline-pairs", "2", "--no-cache", "--out", str(out)]
    for item in light:
        args += ["--set", item]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["criteria"]) == {"pointing_game", "emprt", "smprt", "data_randomization"}
    assert set(summary["criteria"]["smprt"]["methods"]) == {"grad", "lrp"}
    assert "details" not in summary["criteria"]["smprt"]["methods"]["grad"]  # typed results, written flat
    assert main(["evaluate", "--dataset", f"rsna:{rsna.root}", "--model", str(models[0]), "--criteria", "pointing",
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'pointing'" in error and "pointing_game" in error  # the valid names are listed


def test_newer_criteria_score_the_maps_their_authors_score(workspace, rsna, tmp_path):  # noqa: F811
    """Pointing game, energy pointing game and eMPRT on the attribution before the percentile clip (Quantus),
    mIoU on its min–max normalized map with CheXlocalize's strict threshold; randomized states explain the
    trained model's class. Restated here from ``explain`` itself and Quantus's own functions."""
    import quantus
    from quantus.functions.complexity_func import discrete_entropy

    from trust_core.models import load
    from trust_core.models.info import info_of
    from trust_core.saliency import explain, explain_for_classes, predicted_classes

    _root, models, _localizers = workspace
    store = Store(tmp_path / "s")
    criteria = ("pointing_game", "energy_pointing_game", "miou", "emprt", "randomization")
    result = evaluate(rsna, models[:1], config(criteria=criteria), cache=store)
    ev = Evaluation(rsna, models[:1], config(criteria=criteria), cache=store)
    model = load(models[0], num_classes=2)
    prep = info_of(model).prep
    ids = ev.utility_ids
    x = torch.stack([prep(rsna.image(i, prep.size, prep.resize)) for i in ids])
    maps = explain(model, x, methods=("grad", "gradcam", "input_x_gradient"), preset="fast", cache=store, **FAST)
    assert all(maps.from_cache["grad"])  # the very maps the evaluation scored
    masks = ev.masks(ids)
    s = result.summary["criteria"]
    for m in ("grad", "gradcam"):
        ok = np.array([f is None for f in maps.flags[m]])
        raw = maps.unclipped[m][ok]
        assert np.nanmax(raw) == pytest.approx(1.0)
        if m == "grad":  # a gradient's top percent is spread out: the clip changes its map (a coarse CAM's not)
            assert not np.array_equal(raw, maps[m][ok])
        for name, metric in (("pointing_game", quantus.PointingGame), ("energy_pointing_game",
                                                                         quantus.RelevanceMassAccuracy)):
            reference = np.asarray(metric(disable_warnings=True).evaluate_batch(
                a_batch=raw[:, None].astype(np.float64), s_batch=masks[ok][:, None]), float)
            table = result.tables[name]
            ours = table[table.method == m].set_index("image_id")[name].loc[np.asarray(ids)[ok]].to_numpy()
            np.testing.assert_allclose(ours, reference, rtol=1e-6, err_msg=f"{name} {m}")
            assert s[name]["scored_maps"] == "unclipped"
        assert set(result.tables["pointing_game"].pointing_game.dropna()) <= {0.0, 1.0}  # hits, not shares
        # mIoU: CheXlocalize's rule by hand at the tuned threshold (min–max, then > t)
        t = s["miou"]["methods"][m]["threshold"]
        table = result.tables["miou"]
        ours = table[table.method == m].set_index("image_id")["miou"].loc[np.asarray(ids)[ok]].to_numpy()
        for k, (a, g) in enumerate(zip(raw, masks[ok].astype(bool))):
            b = (a - a.min()) / (a.max() - a.min()) > t
            assert ours[k] == pytest.approx((b & g).sum() / (b | g).sum())
    # eMPRT: Quantus's entropy of the unclipped maps, the fully randomized state explaining the original's class
    sx = torch.stack([prep(rsna.image(i, prep.size, prep.resize)) for i in ev.ssim_ids])
    classes = predicted_classes(model, sx)
    final_name, final_model = list(ev.state_models(0))[-1]
    original = explain(model, sx, methods=("grad",), preset="fast", cache=store, **FAST)
    randomized = explain_for_classes(final_model, sx, classes, methods=("grad",), preset="fast", cache=store, **FAST)
    assert all(randomized.from_cache["grad"]) and list(randomized.targets) == list(original.targets)
    h0 = np.array([discrete_entropy(a, a) for a in original.unclipped["grad"]])
    h1 = np.array([discrete_entropy(a, a) for a in randomized.unclipped["grad"]])
    table = result.tables["emprt"]
    ours = table[table.method == "grad"].set_index("image_id")["emprt"].loc[ev.ssim_ids].to_numpy()
    np.testing.assert_allclose(ours, (h1 - h0) / h0, rtol=1e-9)
    assert s["randomization"]["explained_class"].startswith("each randomized state explains the class the trained")


def test_scored_maps_and_randomization_class_are_named_options(workspace, rsna, tmp_path):  # noqa: F811
    _root, models, _localizers = workspace
    store = Store(tmp_path / "s")
    clipped = evaluate(rsna, models[:1], config(criteria=("pointing_game",), scored_maps={"pointing_game": "clipped"}),
                       cache=store)
    block = clipped.summary["criteria"]["pointing_game"]
    assert block["scored_maps"] == "clipped" and "departure" in block["scored_maps_note"] and block["ties"] == "share"
    with pytest.raises(ConfigError, match="choose from"):
        Evaluation(rsna, models[:1], config(scored_maps={"pointing_game": "raw"}))
    with pytest.raises(ConfigError, match="randomization_class"):
        Evaluation(rsna, models[:1], config(randomization_class="mine"))
    own = Evaluation(rsna, models[:1], config(criteria=("randomization",), randomization_class="own"), cache=store)
    pinned = Evaluation(rsna, models[:1], config(criteria=("randomization",)), cache=store)
    unit = next(u for u in pinned.units() if u.state != "original")
    name, state_model = next((n, mdl) for n, mdl in pinned.state_models(0) if n == unit.state)
    original_model = pinned.models[0]
    from trust_core.saliency import predicted_classes
    from trust_core.models.info import info_of
    prep = info_of(original_model).prep
    x = torch.stack([prep(rsna.image(i, prep.size, prep.resize)) for i in unit.image_ids])
    assert pinned.run_unit(unit, state_model).targets == dict(zip(unit.image_ids,
                                                                     predicted_classes(original_model, x).tolist()))
    assert own.run_unit(unit, state_model).targets == dict(zip(unit.image_ids,
                                                                  predicted_classes(state_model, x).tolist()))


def test_smprt_replicate_mean_is_numpys_nanmean_without_its_warning():
    import warnings

    from trust_core.evaluate.criteria.smprt import _replicate_mean

    by_replicate = [np.array([0.25, np.nan, np.nan, -0.5]), np.array([0.75, np.nan, 0.1, 0.3])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an image no replicate scored is NaN, quietly
        got = _replicate_mean(by_replicate, 4)
        assert np.isnan(_replicate_mean([], 3)).all()
    np.testing.assert_array_equal(got, [0.5, np.nan, 0.1, -0.1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(got, np.nanmean(np.stack(by_replicate), 0))
