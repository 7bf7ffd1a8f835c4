"""Why a verdict is inconclusive: one owner of the reasons (CLI, scorecard page, reports)."""
from trust_core.evaluate.verdicts import VERDICT_RULE, verdict_reason, verdict_reasons
from trust_core.metrics.stats import MIN_PAIRED_N, compare_paired


def entry(values, baseline, **extra):
    c = compare_paired(values, baseline, better="greater")
    return {"mean": c.mean, "n": len(values), "n_paired": c.n, "baseline": c.baseline, "verdict": c.verdict,
            "difference_ci": [c.ci_low, c.ci_high], **extra}


def test_too_few_images_no_baseline_and_a_ci_across_zero_each_say_so():
    clear = [0.9] * 5, [0.1] * 5  # a huge, consistent difference: still too few images to decide
    assert MIN_PAIRED_N == 6
    five = entry(*clear)
    assert five["verdict"] == "inconclusive"
    assert verdict_reason("utility", five) == "n=5 < 6: too few images to decide"
    six = entry([0.9] * 6, [0.1] * 6)
    assert six["verdict"] == "pass" and verdict_reason("utility", six) == ""
    across = entry([0.2, 0.8, 0.3, 0.7, 0.4, 0.6, 0.5], [0.5] * 7)
    assert across["verdict"] == "inconclusive"
    assert verdict_reason("utility", across) == "95 % CI of ours − baseline includes 0"
    # repeatability without localizers: no baseline, and what gives one (the CLI's short form: a note follows)
    alone = {**entry([0.9] * 8, [0.1] * 8), "baseline": None, "verdict": "inconclusive"}
    assert verdict_reason("repeatability", alone).startswith("no baseline: two localizers of one kind give it — "
                                                             "--localizer A.pt --localizer B.pt")
    assert "--localizer-maps DIR1 --localizer-maps DIR2" in verdict_reason("repeatability", alone)
    assert verdict_reasons("repeatability", alone, short=True) == ["no baseline"]
    assert verdict_reason("reproducibility", None) == "needs a model of another architecture: repeat --model"
    assert f"below n = {MIN_PAIRED_N} paired images" in VERDICT_RULE
