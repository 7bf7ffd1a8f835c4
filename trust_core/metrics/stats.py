"""Statistics a reviewer expects next to every mean: median, bootstrap CI, paired tests."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ..errors import MetricError


@dataclass(frozen=True)
class Summary:
    """Per-method summary of per-image values (NaN values are excluded and counted)."""

    mean: float
    median: float
    std: float
    ci_low: float
    ci_high: float
    n: int
    excluded: int

    def as_dict(self) -> dict:
        return self.__dict__.copy()


# 10,000 resamples: at n = 16 the Monte-Carlo noise of a 95 % percentile bound is ≈ 0.05 standard errors
# (2,000 left ≈ 0.1–0.2, enough to flip a verdict whose CI touches 0); tests/metrics check the stability.
BOOTSTRAP_RESAMPLES = 10_000
_CHUNK_CELLS = 1 << 22  # resample indices drawn in chunks of at most this many cells (bounded memory at any n)


def bootstrap_ci(values, *, confidence: float = 0.95, n_boot: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (seeded; resamples drawn in chunks, so memory
    stays bounded for any number of values)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // values.size)
    means = np.concatenate([values[rng.integers(0, values.size, size=(min(step, n_boot - start), values.size))]
                            .mean(axis=1) for start in range(0, n_boot, step)])
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarize(values, *, confidence: float = 0.95, n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Summary:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    excluded = int(values.size - finite.size)
    if finite.size == 0:
        nan = float("nan")
        return Summary(nan, nan, nan, nan, nan, 0, excluded)
    low, high = bootstrap_ci(finite, confidence=confidence, n_boot=n_boot, seed=seed)
    return Summary(float(finite.mean()), float(np.median(finite)),
                   float(finite.std(ddof=1)) if finite.size > 1 else 0.0, low, high, int(finite.size), excluded)


@dataclass(frozen=True)
class PairedTest:
    statistic: float
    p_value: float
    n: int
    test: str
    mean_difference: float


def paired_test(a, b, *, test: str = "wilcoxon", alternative: str = "two-sided") -> PairedTest:
    """Paired comparison of per-image values (images where either is NaN are dropped).

    ``test``: 'wilcoxon' (signed-rank, default) or 't' (paired t-test).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise MetricError(f"paired values must have the same length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2:
        return PairedTest(float("nan"), float("nan"), int(a.size), test, float("nan"))
    if test == "wilcoxon":
        if np.allclose(a, b):
            return PairedTest(0.0, 1.0, int(a.size), test, 0.0)
        result = sps.wilcoxon(a, b, alternative=alternative)
    elif test == "t":
        result = sps.ttest_rel(a, b, alternative=alternative)
    else:
        raise MetricError(f"unknown paired test {test!r}; use 'wilcoxon' or 't'")
    return PairedTest(float(result.statistic), float(result.pvalue), int(a.size), test, float((a - b).mean()))


def one_sided_below(values, threshold: float) -> PairedTest:
    """One-sample one-sided t-test that the mean is below ``threshold`` (Venkatesh et al. 2024)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return PairedTest(float("nan"), float("nan"), int(values.size), "t-one-sided", float("nan"))
    result = sps.ttest_1samp(values, threshold, alternative="less")
    return PairedTest(float(result.statistic), float(result.pvalue), int(values.size), "t-one-sided",
                      float(values.mean() - threshold))


VERDICTS = ("pass", "fail", "inconclusive")
# The smallest number of paired images that may decide a verdict; below it every verdict is "inconclusive".
# With n pairs, no distribution-free paired test can reach two-sided 5 % significance before n = 6: the exact
# sign test's and Wilcoxon signed-rank test's smallest two-sided p-value is 2 / 2**n (n = 5: 0.0625; n = 6:
# 0.031). A percentile-bootstrap interval of n < 6 differences rests on few distinct resamples (C(2n−1, n):
# 126 at n = 5) and covers well below its nominal 95 %, so a PASS/FAIL from it would claim a certainty the
# data cannot give.
MIN_PAIRED_N = 6


@dataclass(frozen=True)
class Comparison:
    """Per-image values against a per-image baseline over the *same* images (pairs where either side is
    NaN are dropped on both sides): the mean difference, its bootstrap CI and the verdict it decides.

    ``better='greater'``: pass when the whole 95 % CI of (value − baseline) lies above 0, fail when it
    lies below, inconclusive when it straddles 0; ``'less'`` mirrors it."""

    mean: float  # of the values, over the paired images
    baseline: float  # of the baseline, over the same images
    difference: float
    ci_low: float  # of the difference
    ci_high: float
    n: int
    verdict: str

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def compare_paired(values, baseline, *, better: str, confidence: float = 0.95, n_boot: int = BOOTSTRAP_RESAMPLES,
                   seed: int = 0) -> Comparison:
    values, baseline = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if values.shape != baseline.shape:
        raise MetricError(f"paired values must have the same length, got {values.shape} and {baseline.shape}")
    if better not in ("greater", "less"):
        raise MetricError(f"better must be 'greater' or 'less', got {better!r}")
    keep = np.isfinite(values) & np.isfinite(baseline)
    a, b = values[keep], baseline[keep]
    if a.size == 0:
        nan = float("nan")
        return Comparison(nan, nan, nan, nan, nan, 0, "inconclusive")
    difference = a - b
    low, high = bootstrap_ci(difference, confidence=confidence, n_boot=n_boot, seed=seed)
    above, below = low > 0, high < 0
    if a.size < MIN_PAIRED_N:
        verdict = "inconclusive"  # too few images to decide (see MIN_PAIRED_N)
    elif better == "greater":
        verdict = "pass" if above else "fail" if below else "inconclusive"
    else:
        verdict = "pass" if below else "fail" if above else "inconclusive"
    return Comparison(float(a.mean()), float(b.mean()), float(difference.mean()), low, high, int(a.size), verdict)


def holm(p_values) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out.tolist()
