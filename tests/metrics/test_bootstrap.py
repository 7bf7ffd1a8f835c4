"""The bootstrap behind every verdict: scipy's percentile bootstrap as the oracle, Monte-Carlo noise small
enough that a verdict does not depend on the seed, bounded memory at a real dataset's n."""
import numpy as np
import pytest
from scipy import stats as sps

from trust_core.metrics.stats import BOOTSTRAP_RESAMPLES, bootstrap_ci, compare_paired


def test_percentile_interval_matches_scipy():
    values = np.random.default_rng(3).gamma(2.0, 0.1, size=16)  # skewed, like per-image AUPRC
    ours = bootstrap_ci(values, seed=0)
    reference = sps.bootstrap((values,), np.mean, n_resamples=100_000, method="percentile",
                              random_state=np.random.default_rng(0)).confidence_interval
    se = values.std(ddof=1) / np.sqrt(values.size)
    # both are Monte-Carlo estimates of the same bounds: within a tenth of a standard error
    assert ours[0] == pytest.approx(reference.low, abs=0.1 * se)
    assert ours[1] == pytest.approx(reference.high, abs=0.1 * se)


def test_interval_is_stable_across_seeds_at_n16():
    """With 10,000 resamples the seed moves a bound by far less than a standard error (2,000 moved it by ≈0.2 SE,
    enough to flip a verdict whose interval touches 0)."""
    values = np.random.default_rng(7).normal(0.02, 0.05, size=16)
    se = values.std(ddof=1) / np.sqrt(values.size)
    bounds = np.array([bootstrap_ci(values, seed=s) for s in range(20)])
    assert BOOTSTRAP_RESAMPLES >= 10_000
    assert bounds.std(axis=0).max() < 0.03 * se


def test_verdicts_are_stable_across_seeds_on_demo_like_differences():
    """Every verdict of a set of paired differences like the demo's (n = 16, some near 0) is the same for ten
    seeds, except where the interval's bound lies within Monte-Carlo noise (0.05 SE) of 0."""
    rng = np.random.default_rng(11)
    flips = 0
    for shift in np.linspace(-0.05, 0.05, 21):
        values, baseline = rng.random(16), rng.random(16)
        values = baseline + shift + rng.normal(0, 0.05, 16)
        verdicts = {compare_paired(values, baseline, better="greater", seed=s).verdict for s in range(10)}
        low, high = bootstrap_ci(values - baseline, seed=0)
        se = (values - baseline).std(ddof=1) / 4
        if len(verdicts) > 1:
            flips += 1
            assert min(abs(low), abs(high)) < 0.05 * se  # only a bound within noise of 0 can flip
    assert flips <= 1


def test_memory_is_bounded_at_a_real_datasets_n():
    values = np.random.default_rng(0).random(30_000)  # 10,000 × 30,000 indices at once would be 2.4 GB
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high


def test_workspace_verdicts_do_not_depend_on_the_seed(app_workspace):
    """On an evaluated workspace (the app tests' tiny demo): every utility and pointing-game verdict, restated from
    the per-image tables, is the summary's and the same for ten bootstrap seeds, unless a bound lies within
    Monte-Carlo noise of 0."""
    import json

    import pandas as pd

    results = app_workspace / "results" / "rsna"
    summary = json.loads((results / "summary.json").read_text())
    checked = 0
    for name, column in (("utility", "auprc"), ("pointing_game", "pointing_game")):
        table = pd.read_parquet(results / f"{name}.parquet")
        base = pd.read_parquet(results / f"{name}_baselines.parquet")
        base = base[base.baseline == "average_mask"].set_index("image_id")[column]
        for method, entry in summary["criteria"][name]["methods"].items():
            values = table[table.method == method].set_index("image_id")[column]
            a, b = values.to_numpy(float), base.loc[values.index].to_numpy(float)
            verdicts = [compare_paired(a, b, better="greater", seed=s).verdict for s in range(10)]
            assert verdicts[0] == entry["verdict"], (name, method)
            if len(set(verdicts)) > 1:
                d = (a - b)[np.isfinite(a - b)]
                low, high = bootstrap_ci(d)
                assert min(abs(low), abs(high)) < 0.05 * d.std(ddof=1) / np.sqrt(d.size), (name, method)
            checked += 1
    assert checked >= 8
