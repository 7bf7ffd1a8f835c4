"""Associations against SciPy and scikit-learn."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trust_core.analysis.associations import quartiles, regression, spearman_ci


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    z = rng.uniform(size=n)
    y = 0.5 * x - 0.8 * z + rng.normal(scale=0.5, size=n)
    return x, z, y


def test_spearman_rho_and_p_are_scipys_and_the_ci_matches_scipys_bootstrap():
    x, _, y = data()
    ours = spearman_ci(x, y, n_boot=4000, seed=1)
    reference = stats.spearmanr(x, y)
    assert ours["rho"] == pytest.approx(reference.statistic, abs=1e-12)
    assert ours["p"] == pytest.approx(reference.pvalue, rel=1e-9) and ours["n"] == 60
    boot = stats.bootstrap((x, y), lambda a, b: stats.spearmanr(a, b).statistic, paired=True, vectorized=False,
                           n_resamples=4000, method="percentile", random_state=2)
    assert ours["ci_low"] == pytest.approx(boot.confidence_interval.low, abs=0.03)
    assert ours["ci_high"] == pytest.approx(boot.confidence_interval.high, abs=0.03)
    assert ours["ci_low"] < ours["rho"] < ours["ci_high"]


def test_spearman_with_ties_nans_and_constants():
    x = np.array([1, 1, 2, 2, 3, 3, np.nan, 4.0])
    y = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.9, 0.7, np.nan])
    ours = spearman_ci(x, y, n_boot=500)
    keep = np.isfinite(x) & np.isfinite(y)
    assert ours["rho"] == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic) and ours["n"] == 6
    constant = spearman_ci(np.ones(8), np.arange(8.0))
    assert np.isnan(constant["rho"]) and np.isnan(constant["ci_low"])


def test_regression_coefficients_per_sd_against_sklearn_and_scipy():
    from sklearn.linear_model import LinearRegression

    x, z, y = data(200)
    ours = regression(y, {"x": x, "z": z, "flat": np.full(200, 3.0)})
    assert ours["left_out"] == ["flat"] and ours["n"] == 200
    standardized = np.column_stack([(v - v.mean()) / v.std(ddof=1) for v in (x, z)])
    fit = LinearRegression().fit(standardized, y)
    assert [ours["coefficients"][k]["coef"] for k in ("x", "z")] == pytest.approx(fit.coef_, rel=1e-9)
    assert ours["r2"] == pytest.approx(fit.score(standardized, y), rel=1e-9)
    # one feature: SciPy's slope and its standard error, per SD of the feature
    single = regression(y, {"x": x})
    line = stats.linregress(x, y)
    sd = x.std(ddof=1)
    c = single["coefficients"]["x"]
    assert c["coef"] == pytest.approx(line.slope * sd, rel=1e-9) and c["se"] == pytest.approx(line.stderr * sd, rel=1e-9)
    t = stats.t.ppf(0.975, 198)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((c["coef"] - t * c["se"], c["coef"] + t * c["se"]))
    assert c["p"] == pytest.approx(line.pvalue, rel=1e-6)
    assert regression(y[:2], {"x": x[:2]})["note"].startswith("too few images (2)")


def test_quartiles_by_hand():
    x = np.arange(1.0, 13.0)
    y = x * 10
    rows = quartiles(x, y)
    assert [(r["low"], r["high"], r["mean"], r["n"]) for r in rows] == [(1, 3, 20, 3), (4, 6, 50, 3), (7, 9, 80, 3),
                                                                        (10, 12, 110, 3)]
    counts = quartiles([1, 1, 1, 1, 1, 2, 2, 3], [0, 0, 0, 0, 0, 1, 1, 2])  # ties merge quartiles
    # quartile edges 1, 1, 1, 1.75, 3: the repeated 1s merge, leaving (…, 2] and (2, 3]
    assert [(r["low"], r["high"], r["n"]) for r in counts] == [(1, 2, 7), (3, 3, 1)]
    assert quartiles([1, 1, 1], [1, 2, 3]) == []
    frame = pd.DataFrame({"x": x, "y": y})
    assert rows[0]["mean"] == frame[frame.x <= 3].y.mean()


def test_a_feature_without_values_is_left_out_not_every_row():
    """A logits head has no probability: its confidence column is NaN; the regression leaves the feature out
    (named) and keeps every image."""
    x, z, y = data(50)
    ours = regression(y, {"x": x, "z": z, "confidence": np.full(50, np.nan)})
    assert ours["n"] == 50 and ours["left_out"] == ["confidence"] and set(ours["coefficients"]) == {"x", "z"}
    assert ours["coefficients"]["x"]["coef"] == pytest.approx(regression(y, {"x": x, "z": z})["coefficients"]["x"]["coef"])


def test_trend_band_is_the_ols_mean_ci():
    from trust_core.analysis.associations import trend_band

    x, _, y = data(40)
    grid = np.array([x.min(), 0.0, x.max()])
    fit, low, high = trend_band(x, y, grid)
    line = stats.linregress(x, y)
    assert fit == pytest.approx(line.slope * grid + line.intercept)
    # at x̄ the half-width is t·s/√n; with scipy's intercept standard error at x = 0
    t = stats.t.ppf(0.975, 38)
    residual = y - (line.slope * x + line.intercept)
    s = np.sqrt((residual ** 2).sum() / 38)
    band_at_mean = trend_band(x, y, [x.mean()])
    assert (band_at_mean[2] - band_at_mean[0])[0] == pytest.approx(t * s / np.sqrt(40))
    assert (high[1] - fit[1]) == pytest.approx(t * line.intercept_stderr)
    assert trend_band([1, 1, 1], [1, 2, 3], [1]) is None


def test_no_ci_where_the_bootstrap_is_conditional_or_the_sample_tiny():
    """A binary score with one miss in 16 images: ρ is undefined in every resample that leaves the miss out
    ((15/16)^16 ≈ 36 % of them), and a CI over the others leans away from 0 (it came out [+0.42, +0.69]
    around ρ = +0.42): no CI, and the note says why. Four images in perfect order: SciPy's t-approximation
    gives p = 0; no test and no CI."""
    from trust_core.analysis.associations import MIN_IMAGES, ci_excludes_0, rho_text

    x = np.arange(16.0)
    y = np.ones(16)
    y[0] = 0.0
    ours = spearman_ci(x, y, n_boot=2000)
    assert ours["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert np.isnan(ours["ci_low"]) and np.isnan(ours["ci_high"]) and ci_excludes_0(ours) == 0
    share = float(ours["note"].split("in ")[1].split("%")[0]) / 100
    assert share == pytest.approx((15 / 16) ** 16, abs=0.03)
    assert rho_text(ours).startswith(f"{ours['rho']:+.2f} (no CI: one side is constant in")
    assert rho_text(ours, short=True) == f"{ours['rho']:+.2f} (no CI)"
    assert ours["p"] == pytest.approx(stats.spearmanr(x, y).pvalue)  # the test itself stays SciPy's
    tiny = spearman_ci(np.arange(4.0), np.arange(4.0))
    assert stats.spearmanr(np.arange(4.0), np.arange(4.0)).pvalue == 0  # what the t-approximation says
    assert tiny["rho"] == 1 and np.isnan(tiny["p"]) and np.isnan(tiny["ci_low"]) and str(MIN_IMAGES) in tiny["note"]
    # a balanced binary score keeps its CI: hardly any resample is constant
    balanced = spearman_ci(x, (x % 2 == 0).astype(float) + 0.1 * (x > 7), n_boot=2000)
    assert balanced["ci_low"] <= balanced["rho"] <= balanced["ci_high"] and balanced["note"] == ""


def test_bin_labels_of_quartiles_and_single_values():
    from trust_core.analysis.associations import bin_label

    assert bin_label({"quartile": 2, "of": 4, "low": 0.031, "high": 0.052}) == "Q2: 0.031–0.052"
    assert bin_label({"quartile": 1, "of": 2, "low": 1.0, "high": 2.0}) == "bin 1 of 2: 1–2"
    assert bin_label({"quartile": 4, "of": 4, "low": 3.0, "high": 3.0}) == "Q4: 3"  # not "3–3"
