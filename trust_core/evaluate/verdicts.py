"""Why a verdict is what it is: one owner for the reasons the CLI, the scorecard page and the reports give
beside an inconclusive verdict (too few paired images, no baseline to decide against, a CI across 0)."""
from __future__ import annotations

from ..metrics.stats import MIN_PAIRED_N

# How a verdict is drawn everywhere (scorecard, figures, reports): a mark (forest plots, curves) and a table
# cell (background, text).
VERDICT_MARKS = {"pass": "#15803d", "fail": "#b91c1c", "inconclusive": "#b45309"}
VERDICT_CELLS = {"pass": ("#d3f0d8", "#14532d"), "fail": ("#fbd5d5", "#7f1d1d"), "inconclusive": ("#fdf0c4", "#713f12")}

# The criteria whose baseline comes from localizers (two U-Nets or two sets of score maps), and what a run
# without one lacks.
NEEDS_SECOND_MODEL = {"repeatability": "needs a second model of the same architecture: repeat --model",
                      "reproducibility": "needs a model of another architecture: repeat --model"}
LOCALIZER_BASELINE = ("two localizers of one kind give it — --localizer A.pt --localizer B.pt (U-Nets trained with "
                      "different seeds: `trust train-localizer --seed`) or --localizer-maps DIR1 --localizer-maps DIR2 "
                      "(two sets of score maps)")

VERDICT_RULE = ("pass / fail when the 95 % bootstrap CI of the paired per-image difference (method − baseline, "
                f"same images) lies wholly on the passing / failing side of 0; inconclusive when it straddles 0, "
                f"when there is no baseline, or below n = {MIN_PAIRED_N} paired images (too few to decide)")


def point_rule(passed, n: int = 1) -> str | None:
    """The paper's point-estimate rule, kept beside the verdict: 'pass', 'fail', or None without data."""
    if not n:
        return None
    return "pass" if passed else "fail"


def baseline_of(entry: dict):
    """The baseline a method's verdict was decided against: utility's low baseline (``baseline_low``; its
    localizer is ``baseline_high``), every other criterion's ``baseline``."""
    return entry.get("baseline_low", entry.get("baseline"))


def paired_n(entry: dict) -> int | None:
    """The n a verdict was decided on: the paired images (method and baseline both defined), else all."""
    n = entry.get("n_paired", entry.get("n"))
    return int(n) if isinstance(n, (int, float)) and n == n else None


def verdict_reasons(criterion: str, entry: dict | None, *, short: bool = False) -> list[str]:
    """Why ``entry`` (a method's block of a criterion in ``summary.json``) is inconclusive, or what a scorecard
    reader must know beside its verdict; [] for a verdict the data decided. ``short``: the CLI's words, where a
    note after the table says what gives a missing baseline."""
    if entry is None:
        return [NEEDS_SECOND_MODEL[criterion]] if criterion in NEEDS_SECOND_MODEL else []
    reasons = []
    n = paired_n(entry)
    verdict = entry.get("verdict")
    base = baseline_of(entry)
    if verdict == "inconclusive" and n is not None and n < MIN_PAIRED_N:
        reasons.append(f"n={n} < {MIN_PAIRED_N}: too few images to decide")
    if base is None and criterion in NEEDS_SECOND_MODEL:
        reasons.append("no baseline" if short else f"no baseline: {LOCALIZER_BASELINE}")
    if not reasons and verdict == "inconclusive" and not short:
        reasons.append("95 % CI of ours − baseline includes 0")
    return reasons


def verdict_reason(criterion: str, entry: dict | None) -> str:
    """:func:`verdict_reasons` as one line ('' when the data decided the verdict)."""
    return "; ".join(verdict_reasons(criterion, entry))


def paper_rule_text(entry: dict | None) -> str:
    """The paper's point rule (means only), marked as such where the images are too few for a verdict."""
    if not entry or not entry.get("paper_rule"):
        return "n/a"
    n = paired_n(entry)
    if n is not None and n < MIN_PAIRED_N:
        return f"{entry['paper_rule']} (point estimate, n={n})"
    return entry["paper_rule"]


# Below this many paired images a bootstrap CI is wide and its own coverage uncertain (Efron & Tibshirani's
# advice for the percentile interval): a verdict stands, with a warning that more images may change it.
SMALL_SAMPLE_N = 30

VERDICT_VS_PAPER = ("Two rules read the same numbers. The paper's rule compares point estimates: the method's mean "
                    "against the baseline's, with no uncertainty. Our verdict asks the 95 % bootstrap CI of the "
                    "paired per-image difference (method − baseline) to lie wholly on one side of 0, with at least "
                    f"{MIN_PAIRED_N} paired images. Where the means differ by less than the images' spread, the "
                    "paper's rule still says pass or fail and our verdict says inconclusive: the data do not decide it.")


def verdict_vs_paper(entry: dict | None) -> str:
    """Why a method's verdict and the paper's point rule differ ('' where they agree or one is missing)."""
    if not entry or not entry.get("paper_rule") or not entry.get("verdict"):
        return ""
    verdict, rule, n = entry["verdict"], entry["paper_rule"], paired_n(entry)
    if verdict == rule:
        return ""
    if verdict == "inconclusive":
        if n is not None and n < MIN_PAIRED_N:
            return f"the paper's rule reads the means alone ({rule}); n={n} is too few for a verdict"
        return f"the means say {rule}, but the 95 % CI of the difference includes 0: not decided by the data"
    return (f"the means say {rule}, the paired difference's 95 % CI says {verdict}: on the same images, the "
            f"bootstrap distribution is skewed past the mean difference (or the means tie)")

