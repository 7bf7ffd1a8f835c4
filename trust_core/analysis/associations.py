"""How a localization score goes with a lesion's features: Spearman's ρ with a percentile-bootstrap 95 % CI
(images resampled), a multiple linear regression of the score on all features together (standardized, so
each coefficient is the change per standard deviation of its feature, with t-based 95 % CIs), and the score
per feature quartile — the analyses of CheXlocalize (Saporta et al. 2022), on one's own model and data."""
from __future__ import annotations

import numpy as np

from ..metrics.stats import BOOTSTRAP_RESAMPLES

_CHUNK = 2_000_000  # values per bootstrap chunk: memory stays bounded for any number of images


def _ranks(matrix: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(matrix, axis=-1)  # average ranks for ties, as scipy.stats.spearmanr


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


MIN_IMAGES = 10  # fewer finite pairs: ρ is given, but neither a CI nor a test (a bootstrap of a handful of
# images is not a CI, and SciPy's t-approximation gives p = 0 for a perfect rank order of 4 images)
MAX_UNDEFINED = 0.05  # share of bootstrap resamples whose ρ is undefined (one side constant) beyond which no CI


def spearman_ci(x, y, *, confidence: float = 0.95, n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Spearman's ρ of the finite pairs, its two-sided p-value (SciPy) and a percentile-bootstrap CI over
    images. ρ is undefined in a resample where one side is constant: where that is more than
    ``MAX_UNDEFINED`` of them (a pointing-game hit of 15 images in 16 misses its one miss in 36 % of
    resamples), the CI over the others would be conditional on resampling the rare value and so biased away
    from 0: no CI is given, and ``note`` says why. Below ``MIN_IMAGES`` images neither a CI nor a p-value."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan = float("nan")
    out = {"rho": nan, "ci_low": nan, "ci_high": nan, "p": nan, "n": n, "note": ""}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        out["note"] = "one side constant" if n >= 3 else f"{n} image(s)"
        return out
    out["rho"] = float(spearmanr(x, y).statistic)
    if n < MIN_IMAGES:
        out["note"] = f"{n} images: too few for a CI or a test, which need {MIN_IMAGES}"
        return out
    out["p"] = float(spearmanr(x, y).pvalue)
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK // n)
    rhos = []
    for start in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - start), n))
        rhos.append(_pearson_rows(_ranks(x[idx]), _ranks(y[idx])))
    rhos = np.concatenate(rhos)
    undefined = float(np.mean(~np.isfinite(rhos)))
    if undefined > MAX_UNDEFINED:
        out["note"] = (f"no CI: one side is constant in {undefined:.0%} of bootstrap resamples (few images differ "
                       f"from the others)")
        return out
    alpha = (1 - confidence) / 2
    out["ci_low"], out["ci_high"] = (float(v) for v in np.quantile(rhos[np.isfinite(rhos)], [alpha, 1 - alpha]))
    return out


def rho_text(rho: dict, *, short: bool = False) -> str:
    """"+0.31 [+0.16, +0.45]"; "+1.00 (no CI: …)" where no CI is given (``short``: "+1.00 (no CI)"); "—"
    where ρ is undefined."""
    if rho["rho"] != rho["rho"]:
        return "—"
    if rho["ci_low"] != rho["ci_low"]:
        return f"{rho['rho']:+.2f} ({'no CI' if short else rho.get('note') or 'no CI'})"
    return f"{rho['rho']:+.2f} [{rho['ci_low']:+.2f}, {rho['ci_high']:+.2f}]"


def ci_excludes_0(rho: dict) -> int:
    """+1 where ρ's CI lies above 0, −1 where below, 0 where it includes 0 or there is none."""
    low, high = rho["ci_low"], rho["ci_high"]
    return 1 if low > 0 else -1 if high < 0 else 0


def regression(y, features: dict[str, np.ndarray], *, confidence: float = 0.95) -> dict:
    """Ordinary least squares of ``y`` on the standardized ``features`` (rows with any non-finite value
    dropped; constant features left out and named): per feature the coefficient (change of ``y`` per SD),
    its standard error and t-based CI; R² and n. Too few rows for the model: no coefficients, and why."""
    from scipy import stats

    y = np.asarray(y, np.float64)
    missing = [k for k in features if not np.isfinite(np.asarray(features[k], np.float64)).any()]  # e.g. confidence
    names = [k for k in features if k not in missing]  # of a logits head: left out, not every row dropped
    X = np.column_stack([np.asarray(features[k], np.float64) for k in names]) if names else np.empty((len(y), 0))
    keep = np.isfinite(y) & np.isfinite(X).all(axis=1)
    X, y = X[keep], y[keep]
    n = int(y.size)
    constant = missing + [k for j, k in enumerate(names) if n == 0 or np.ptp(X[:, j]) == 0]
    used = [j for j, k in enumerate(names) if k not in constant]
    out = {"n": n, "r2": float("nan"), "coefficients": {}, "left_out": constant, "note": ""}
    p = len(used)
    if p == 0 or n <= p + 1:
        out["note"] = f"too few images ({n}) for {p} feature(s) and an intercept"
        return out
    Z = (X[:, used] - X[:, used].mean(0)) / X[:, used].std(0, ddof=1)
    A = np.column_stack([np.ones(n), Z])
    beta, *_ = np.linalg.lstsq(A, y, rcond=None)
    residual = y - A @ beta
    dof = n - A.shape[1]
    sigma2 = float(residual @ residual) / dof
    covariance = sigma2 * np.linalg.pinv(A.T @ A)
    t = stats.t.ppf(0.5 + confidence / 2, dof)
    total = float(((y - y.mean()) ** 2).sum())
    out["r2"] = 1.0 - float(residual @ residual) / total if total > 0 else float("nan")
    for k, j in enumerate(used, start=1):
        se = float(np.sqrt(covariance[k, k]))
        coefficient = float(beta[k])
        p_value = float(2 * stats.t.sf(abs(coefficient / se), dof)) if se > 0 else float("nan")
        out["coefficients"][names[j]] = {"coef": coefficient, "se": se, "ci_low": coefficient - t * se,
                                         "ci_high": coefficient + t * se, "p": p_value}
    return out


def quartiles(x, y) -> list[dict]:
    """The mean score per quartile of a feature (quartiles merged where values tie: e.g. instance counts)."""
    import pandas as pd

    frame = pd.DataFrame({"x": np.asarray(x, np.float64), "y": np.asarray(y, np.float64)}).dropna()
    if frame.x.nunique() < 2:
        return []
    bins = pd.qcut(frame.x, 4, duplicates="drop")
    groups = list(frame.groupby(bins, observed=True))
    rows = []
    for k, (interval, part) in enumerate(groups):
        rows.append({"quartile": k + 1, "of": len(groups), "low": float(part.x.min()), "high": float(part.x.max()),
                     "mean": float(part.y.mean()), "n": int(len(part))})
    return rows


def bin_label(row: dict) -> str:
    """'Q2: 0.03–0.05' for a quartile; 'bin 1 of 2: 1–2' where tied values merged quartiles; 'Q4: 3' where a
    bin holds one value (a count such as the number of instances)."""
    name = f"Q{row['quartile']}" if row.get("of", 4) == 4 else f"bin {row['quartile']} of {row['of']}"
    low, high = f"{row['low']:.3g}", f"{row['high']:.3g}"
    return f"{name}: {low}" if low == high else f"{name}: {low}–{high}"


def trend_band(x, y, grid, *, confidence: float = 0.95):
    """The least-squares line of ``y`` on ``x`` at ``grid`` with the pointwise t-based CI of its mean
    (fit, low, high); None with fewer than three finite pairs or a constant ``x``."""
    from scipy import stats

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    s = np.sqrt(float(residual @ residual) / (x.size - 2))
    sxx = float(((x - x.mean()) ** 2).sum())
    grid = np.asarray(grid, np.float64)
    fit = slope * grid + intercept
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 2) * s * np.sqrt(1 / x.size + (grid - x.mean()) ** 2 / sxx)
    return fit, fit - half, fit + half
