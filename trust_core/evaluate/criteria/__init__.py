"""The criteria registry: every trust criterion with its metric, direction, baselines, verdict rule, the
tables it writes and the ground truth it needs — one owner for the CLI, the evaluation, the scorecard, the
pages and the reports.

Each criterion scores itself: ``score(ctx) -> CriterionResult`` in the module its registry entry names
(``scorer``: :mod:`.utility`, :mod:`.localization`, :mod:`.randomization`, :mod:`.smprt`, :mod:`.emprt`,
:mod:`.data_randomization`, :mod:`.agreement`), given a :class:`~.context.ScoringContext` (the plan, the
maps in the form the criterion scores, the shared per-image measures and the random-pair baseline), as
Quantus metrics do. The evaluation (``evaluate/run.py``) plans and executes; :func:`score` dispatches.

Import-light (no torch, no pandas): the CLI builds its choices from here without loading the engine; a
scorer module is imported when its criterion is scored.

The paper's four (Arun et al. 2021) are the default set; the others are the field's newer tests:
localization by pointing game, energy-based pointing game and CheXlocalize's mIoU; randomization by
Spearman rank correlation and HOG similarity (Adebayo et al. 2018), sMPRT and eMPRT (Hedström et al.
2023); data randomization with a model trained on shuffled labels (Adebayo et al. 2018).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ...metrics.stats import Summary
from ...sets import EXTENDED_SET, PAPER_SET, SETS


# The two forms of a saliency map a criterion can score (``trust_core.saliency.postprocess``).
CLIPPED, UNCLIPPED = "clipped", "unclipped"
MAP_FORMS = {
    CLIPPED: "the paper's map: 99th-percentile clip, rescaled to [0, 1] (min–max only for Guided Grad-CAM)",
    UNCLIPPED: "the attribution's 2-D map before the clip (|a| summed over channels, / its maximum)",
}


@dataclass(frozen=True)
class Criterion:
    """A trust criterion as data.

    Attributes
    ----------
    key : the name ``trust evaluate --criteria`` takes and results are stored under.
    family : 'localization' (maps against ground truth), 'randomization' (maps of a model against those
        of its randomized states), 'agreement' (maps of two trained models) or 'data' (maps of the model
        against those of a model trained on shuffled labels).
    metric : what is measured per image.
    higher_is_better : the metric's direction *for a trustworthy method* (randomization: lower similarity
        to the randomized model is better).
    baseline : what the metric is compared with.
    rule : the verdict rule, pass / fail / inconclusive.
    needs : what the dataset and models must provide ('masks', 'randomized states', 'replicates',
        'other architectures').
    group : 'paper' or 'extended'.
    reference : where it comes from.
    table, column : the per-image table the evaluation writes for it and its value column (pages plot them).
    baseline_table : the per-image table of its baseline ('' when it writes none); more_tables: any other.
    scorer : the module of this package whose ``score(ctx)`` scores it.
    independent_rule : the rule under independent randomization (the randomization family's similarity tests).
    paper_rule : the paper's point rule kept beside the verdict (None: the paper did not test the criterion).
    maps : the form of the map it scores by default (:data:`MAP_FORMS`): what its authors score — the
        paper's four and Adebayo's similarity tests the clipped visualization, Quantus's metrics the raw
        attribution, CheXlocalize the min–max normalized map without a clip. ``--scored-maps`` picks the
        other, recorded in the results as a departure.
    """

    key: str
    label: str
    family: str
    metric: str
    higher_is_better: bool
    baseline: str
    rule: str
    needs: tuple[str, ...]
    group: str = EXTENDED_SET
    reference: str = ""
    table: str = ""
    column: str = ""
    maps: str = CLIPPED
    baseline_table: str = ""
    more_tables: tuple[str, ...] = ()
    scorer: str = ""
    independent_rule: str = ""
    paper_rule: str | None = None

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def better(self) -> str:
        """The passing side of the paired difference to the baseline ('greater' or 'less')."""
        return "greater" if self.higher_is_better else "less"

    @property
    def tables(self) -> tuple[str, ...]:
        """Every per-image table the criterion writes."""
        return tuple(t for t in (self.table, self.baseline_table, *self.more_tables) if t)

    def rule_for(self, mode: str = "cascading") -> str:
        """The verdict rule as the results state it, under a randomization mode."""
        return self.independent_rule if mode == "independent" and self.independent_rule else self.rule

    def paper_rule_for(self, mode: str = "cascading") -> str | None:
        """The paper's point rule (None: the paper did not test this criterion), under a randomization mode."""
        if self.paper_rule and mode == "independent" and self.independent_rule:
            return self.paper_rule + " (for every block)"
        return self.paper_rule


# the similarities of the randomization and agreement families (a criterion's ``column``), as results name them
SIMILARITY_LABELS = {"ssim": "SSIM", "spearman": "Spearman ρ", "hog": "HOG similarity"}


def _cascading(label: str) -> str:
    return (f"cascading: pass when the 95 % CI of {label}(original, fully randomized) − random-pair baseline lies "
            f"below 0 (fail: above 0; else inconclusive)")


def _independent(label: str) -> str:
    return (f"independent: every block randomized alone must bring the maps below the random-pair baseline (pass: "
            f"each block's 95 % CI of {label} − baseline below 0; fail: any block's above 0); the headline is the "
            f"least sensitive block")


def _similarity_test(key: str, label: str, metric: str, baseline: str) -> "Criterion":
    """Adebayo et al.'s model-randomization test under another similarity than the paper's SSIM (``key``, one
    of :data:`SIMILARITY_LABELS`): the same states, images, baseline and rules."""
    name = SIMILARITY_LABELS[key]
    return Criterion(key, label, "randomization", metric, False, baseline, _cascading(name), ("randomized states",),
                     reference="Adebayo et al., NeurIPS 2018", table=f"randomization_{key}", column=key,
                     baseline_table=f"randomization_{key}_baseline", scorer="randomization",
                     independent_rule=_independent(name))


_AGREEMENT = ("pass: the 95 % CI of the paired SSIM difference to the SSIM between two localizers trained with "
              "different seeds lies above 0 (fail: below 0; else inconclusive)")

CRITERIA: dict[str, Criterion] = {c.key: c for c in (
    Criterion("utility", "Utility", "localization", "AUPRC", True,
              "average ground-truth mask of train+val (low); a localizer's score maps (high)",
              "pass: the 95 % CI of the paired AUPRC difference to the average-mask baseline lies above 0 "
              "(fail: below 0; else inconclusive). Paired Wilcoxon p against the low (one-sided) and "
              "high (two-sided) baselines, Holm-corrected across methods, are reported beside.",
              ("masks",), PAPER_SET, "Arun et al. 2021", table="utility", column="auprc",
              baseline_table="utility_baselines", more_tables=("utility_by_model",), scorer="utility",
              paper_rule="mean AUPRC > the average-mask baseline's mean"),
    Criterion("randomization", "Randomization", "randomization", "SSIM", False,
              "mean SSIM between original maps of two different images",
              _cascading(SIMILARITY_LABELS["ssim"]), ("randomized states",), PAPER_SET, "Adebayo et al. 2018; Arun et al. 2021",
              table="randomization", column="ssim", baseline_table="randomization_baseline", scorer="randomization",
              independent_rule=_independent(SIMILARITY_LABELS["ssim"]),
              paper_rule="mean SSIM at the fully randomized state < the random-pair baseline's mean"),
    Criterion("repeatability", "Repeatability", "agreement", "SSIM", True,
              "SSIM between two localizers trained with different seeds",
              _AGREEMENT, ("replicates",), PAPER_SET, "Arun et al. 2021", table="repeatability", column="ssim",
              scorer="agreement", paper_rule="mean SSIM ≥ the two localizers' mean SSIM"),
    Criterion("reproducibility", "Reproducibility", "agreement", "SSIM", True,
              "SSIM between two localizers trained with different seeds",
              _AGREEMENT, ("other architectures",), PAPER_SET, "Arun et al. 2021", table="reproducibility",
              column="ssim", scorer="agreement", paper_rule="mean SSIM ≥ the two localizers' mean SSIM"),
    Criterion("pointing_game", "Pointing game", "localization", "hit (map maximum inside the ground truth)", True,
              "the average ground-truth mask of train+val, scored the same way",
              "pass: the 95 % CI of the paired hit-rate difference to the average-mask baseline lies above 0 "
              "(else inconclusive)", ("masks",), reference="Zhang et al., ECCV 2016 (Quantus PointingGame)",
              table="pointing_game", column="pointing_game", maps=UNCLIPPED, baseline_table="pointing_game_baselines",
              scorer="localization"),
    Criterion("energy_pointing_game", "Energy pointing game", "localization",
              "share of the map's energy inside the ground truth", True,
              "the average ground-truth mask of train+val, scored the same way",
              "pass: the 95 % CI of the paired difference to the average-mask baseline lies above 0 (else "
              "inconclusive)", ("masks",), reference="Wang et al., CVPRW 2020 (Quantus RelevanceMassAccuracy)",
              table="energy_pointing_game", column="energy_pointing_game", maps=UNCLIPPED,
              baseline_table="energy_pointing_game_baselines", scorer="localization"),
    Criterion("miou", "mIoU (CheXlocalize)", "localization",
              "IoU of the map thresholded at its method's tuned threshold", True,
              "the average ground-truth mask of train+val, thresholded and tuned the same way",
              "pass: the 95 % CI of the paired IoU difference to the average-mask baseline lies above 0 (else "
              "inconclusive)", ("masks",), reference="Saporta et al., Nature Machine Intelligence 2022 (CheXlocalize)",
              table="miou", column="miou", maps=UNCLIPPED, baseline_table="miou_baselines", scorer="localization"),
    _similarity_test("spearman", "Randomization (Spearman)",
                     "Spearman rank correlation of the original and fully randomized maps",
                     "mean Spearman correlation between original maps of two different images"),
    _similarity_test("hog", "Randomization (HOG)",
                     "Pearson correlation of the HOG features of the original and fully randomized maps",
                     "mean HOG similarity between original maps of two different images"),
    Criterion("smprt", "sMPRT", "randomization",
              "Spearman ρ of the denoised maps (mean over the image and noisy copies) of the original and the fully "
              "randomized model", False, "mean ρ between denoised original maps of two different images",
              "pass: the 95 % CI of ρ(original, fully randomized) − random-pair baseline lies below 0 (fail: above 0; "
              "else inconclusive)", ("randomized states",), reference="Hedström et al., TMLR 2023 (Quantus SmoothMPRT)",
              table="smprt", column="spearman", maps=UNCLIPPED, scorer="smprt"),
    Criterion("emprt", "eMPRT", "randomization",
              "rise of complexity (H(fully randomized map) − H(original)) / H(original), H the entropy of a "
              "100-bin histogram", True, "0 (no rise in complexity)",
              "pass: the 95 % CI of the mean rise lies above 0 (fail: below 0) (else inconclusive)",
              ("randomized states",), reference="Hedström et al., TMLR 2023 (Quantus EfficientMPRT)", table="emprt",
              column="emprt", maps=UNCLIPPED, scorer="emprt"),
    Criterion("data_randomization", "Data randomization", "data",
              "SSIM of the maps of the model and of a model trained on shuffled labels", False,
              "mean SSIM between the model's maps of two different images",
              "pass: the 95 % CI of SSIM(model, shuffled-label model) − random-pair baseline lies below 0 (fail: above "
              "0; else inconclusive)", ("a model trained on shuffled labels",), reference="Adebayo et al., NeurIPS 2018",
              table="data_randomization", column="ssim", baseline_table="data_randomization_baseline",
              scorer="data_randomization"),
)}

PAPER_CRITERIA = tuple(k for k, c in CRITERIA.items() if c.group == PAPER_SET)


def resolve_scored_maps(choices) -> dict[str, str]:
    """``{criterion: form}`` departures from the registry's defaults (``"pointing_game=clipped"`` strings or a
    dict) → a checked dict holding only real departures. Raises ValueError naming the valid choices."""
    if not choices:
        return {}
    if not isinstance(choices, dict):
        pairs = {}
        for item in ([choices] if isinstance(choices, str) else choices):
            for part in str(item).replace(",", " ").split():
                key, sep, form = part.partition("=")
                if not sep:
                    raise ValueError(f"--scored-maps takes CRITERION=FORM, got {part!r}")
                pairs[key.strip()] = form.strip()
        choices = pairs
    unknown = [k for k in choices if k not in CRITERIA]
    if unknown:
        raise ValueError(f"unknown criteria {unknown} in --scored-maps; choose from {list(CRITERIA)}")
    bad = {k: v for k, v in choices.items() if v not in MAP_FORMS}
    if bad:
        raise ValueError(f"unknown map forms {bad}; choose from {list(MAP_FORMS)}")
    return {k: v for k, v in choices.items() if v != CRITERIA[k].maps}


def scored_form(key: str, departures: dict | None = None) -> str:
    """The map form criterion ``key`` scores under ``departures`` (see :func:`resolve_scored_maps`)."""
    return (departures or {}).get(key, CRITERIA[key].maps)


@dataclass(frozen=True)
class MethodResult(Summary):
    """One method under one criterion, as ``summary.json`` writes it: its :class:`Summary` (the fields every
    criterion gives), the verdict, and its own (baselines, CIs of the difference, thresholds, states…) in
    ``details``."""

    verdict: str
    paper_rule: str | None = None
    details: dict = field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry: dict) -> "MethodResult":
        names = {f.name for f in fields(cls)} - {"details"}
        missing = [n for n in names if n not in entry and n != "paper_rule"]
        if missing:
            raise ValueError(f"a criterion result lacks {missing}")
        if entry["verdict"] not in ("pass", "fail", "inconclusive"):
            raise ValueError(f"unknown verdict {entry['verdict']!r}")
        return cls(**{n: entry.get(n) for n in names}, details={k: v for k, v in entry.items() if k not in names})

    def as_dict(self) -> dict:
        out = asdict(self)
        details = out.pop("details")
        return {**out, **details}


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's block of ``summary.json``."""

    key: str
    metric: str
    n_images: int
    rule: str
    methods: dict  # method → MethodResult (None where the criterion could not run, e.g. one replicate)
    details: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict, repr=False)  # table name → per-image DataFrame (not in the summary)

    @classmethod
    def from_block(cls, key: str, block: dict, tables: dict | None = None) -> "CriterionResult":
        """A ``summary.json`` block (with the tables it was scored from, when there are) as a typed result;
        raises ValueError when a field every result must have is missing."""
        if key not in CRITERIA:
            raise ValueError(f"unknown criterion {key!r}")
        unknown = set(tables or {}) - set(CRITERIA[key].tables)
        if unknown:
            raise ValueError(f"criterion {key!r} writes {list(CRITERIA[key].tables)}, not {sorted(unknown)}")
        methods = {m: (None if e is None else MethodResult.from_entry(e)) for m, e in block["methods"].items()}
        rest = {k: v for k, v in block.items() if k not in ("metric", "n_images", "rule", "methods")}
        return cls(key, block["metric"], block["n_images"], block["rule"], methods, rest, dict(tables or {}))

    def as_dict(self) -> dict:
        """The block as written (``dataclasses.asdict`` of the typed results, details merged back)."""
        return {"metric": self.metric, "n_images": self.n_images, "rule": self.rule,
                "methods": {m: (None if r is None else r.as_dict()) for m, r in self.methods.items()},
                **self.details}


def score(key: str, ctx) -> CriterionResult:
    """Criterion ``key`` scored by its own module (the registry's ``scorer``) on a
    :class:`~.context.ScoringContext`."""
    from importlib import import_module

    return import_module(f"{__name__}.{CRITERIA[key].scorer}").score(ctx.for_criterion(key))


def criterion_set(name: str) -> tuple[str, ...]:
    """'paper' (the four) or 'extended' (every registered criterion)."""
    return PAPER_CRITERIA if name == PAPER_SET else tuple(CRITERIA)


def resolve_criteria(names) -> tuple[str, ...]:
    """Criterion keys (or set names) → registry keys in registry order; ``None`` → the paper's four.
    Raises ValueError naming the valid choices."""
    if names is None:
        return PAPER_CRITERIA
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    unknown = [n for n in names if n not in CRITERIA and n not in SETS]
    if unknown:
        raise ValueError(f"unknown criteria {unknown}; choose from {list(CRITERIA)} (or a set: {list(SETS)})")
    chosen = set()
    for n in names:
        chosen |= set(criterion_set(n)) if n in SETS else {n}
    return tuple(k for k in CRITERIA if k in chosen)
