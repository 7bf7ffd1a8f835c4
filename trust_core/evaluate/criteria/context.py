"""What a criterion scores from: the planned evaluation, the maps of every model state in both forms, and
the measures every criterion shares — per-image AUPRC, SSIM and the other similarities (each guarded once
against flagged, non-finite maps), the random-pair baseline, and the entry every method's result starts
from (summary, paired comparison, verdict)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ...metrics import auprc_batch, compare_paired, ssim_batch, summarize
from . import CRITERIA, CriterionResult, scored_form


def per_image(measure: Callable, *stacks: np.ndarray, given: tuple = ()) -> np.ndarray:
    """``measure(*stacks, *given)`` per image of (N, H, W) stacks, NaN for an image where any stack's map is
    not finite (a flagged map); ``given`` (ground truth…) is indexed alike but not checked."""
    out = np.full(len(stacks[0]), np.nan)
    ok = np.logical_and.reduce([np.isfinite(s).all(axis=(1, 2)) for s in stacks])
    if ok.any():
        out[ok] = measure(*(s[ok] for s in stacks), *(g[ok] for g in given))
    return out


def per_map_measure(measure: str, name: str = "") -> Callable:
    """A measure of each map of an (N, H, W) stack against its mask, as :func:`per_image` takes it: 'auprc',
    'pointing_game' (``name``: its tie rule, 'any' or 'share') or 'energy_pointing_game'."""
    from ...metrics import extra

    if measure == "auprc":
        import torch

        return lambda s, m: auprc_batch(torch.from_numpy(s), torch.from_numpy(m)).numpy()
    if measure == "pointing_game":
        return lambda s, m: extra.pointing_game(s, m, ties=name)
    if measure == "energy_pointing_game":
        return extra.energy_pointing_game
    raise ValueError(f"no per-map measure {measure!r}")


def similarity(name: str, a: np.ndarray, b: np.ndarray, *, data_range: float) -> np.ndarray:
    """Per-image similarity of two (N, H, W) stacks, ``name`` one of
    :data:`~trust_core.evaluate.criteria.SIMILARITY_LABELS`: SSIM (at ``data_range``; the paper's is 2),
    Spearman ρ or HOG similarity; NaN where either map is flagged."""
    import torch

    from ...metrics import extra

    measure = {"ssim": lambda x, y: ssim_batch(torch.from_numpy(x), torch.from_numpy(y),
                                               data_range=data_range).numpy(),
               "spearman": extra.spearman, "hog": extra.hog_similarity}[name]
    return per_image(measure, a, b)


@dataclass(frozen=True)
class ScoringContext:
    """One evaluation's maps, ready for its criteria; :meth:`for_criterion` sets the criterion scored.

    plan : the :class:`~trust_core.evaluate.run.Evaluation` (image sets, models, configuration, ground truth).
    forms : map form ('clipped', 'unclipped') → ``{(model_index, state): {image_id: {method: map}}}``.
    noisy : the same for sMPRT's noisy copies (each map a stack of the copies).
    flags, stats : per (model_index, state), per image and method: the map's flag and its statistics.
    state_index : state name → its index in the cascade (0: original).
    localizer : the high baselines (:meth:`~trust_core.evaluate.run.Evaluation.localizer_baselines`).
    key : the criterion being scored.
    ledger : the measures scored as the units finished (:class:`~trust_core.evaluate.ledger.MeasureLedger`),
        read instead of the maps where it holds them.
    """

    plan: object
    forms: dict
    noisy: dict
    flags: dict
    stats: dict
    state_index: dict
    localizer: dict
    key: str = ""
    ledger: object = None

    def for_criterion(self, key: str) -> "ScoringContext":
        return replace(self, key=key)

    # -- what is scored ----------------------------------------------------------------------------
    @property
    def criterion(self):
        return CRITERIA[self.key]

    @property
    def form(self) -> str:
        """The map form this criterion scores: its authors', or the departure asked for."""
        return scored_form(self.key, self.plan.scored_maps)

    @property
    def maps(self) -> dict:
        return self.forms[self.form]

    @property
    def noisy_maps(self) -> dict:
        return self.noisy[self.form]

    @property
    def methods(self) -> list[str]:
        return self.plan.methods

    @property
    def config(self):
        return self.plan.config

    @property
    def seed(self) -> int:
        return self.plan.config.bootstrap_seed

    @property
    def final_state(self) -> tuple[int, str | None]:
        """The index and name of the last randomized state (0, None without randomized states)."""
        last = max(self.state_index.values()) if self.state_index else 0
        return last, next((s for s, k in self.state_index.items() if k == last), None)

    def stack(self, model_index: int, state: str, method: str, ids: list[str], maps: dict | None = None) -> np.ndarray:
        """One method's maps of ``ids`` under one model state, as an (N, H, W) stack."""
        state_maps = (self.maps if maps is None else maps)[(model_index, state)]
        return np.stack([state_maps[i][method] for i in ids])

    # -- measures ----------------------------------------------------------------------------------
    def auprc(self, stack: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return per_image(per_map_measure("auprc"), stack, given=(masks,))

    def scored(self, measure: str, name: str, model_index: int, state: str, method: str, ids: list[str],
               compute: Callable[[], np.ndarray]) -> np.ndarray:
        """A per-image measure of one model state's maps of ``ids`` in this criterion's form: as scored when
        their unit finished (the ledger, :mod:`~trust_core.evaluate.ledger`), else ``compute()`` from the
        maps — the same values."""
        found = None if self.ledger is None else self.ledger.lookup(measure, name, self.form, model_index, state,
                                                                    method, ids)
        return found if found is not None else compute()

    def auprc_of(self, model_index: int, state: str, method: str, ids: list[str], masks: np.ndarray) -> np.ndarray:
        """:meth:`auprc` of one model state's maps of ``ids`` (through :meth:`scored`)."""
        return self.scored("auprc", "", model_index, state, method, ids,
                           lambda: self.auprc(self.stack(model_index, state, method, ids), masks))

    def similarity_to_original(self, name: str, model_index: int, state: str, method: str,
                               ids: list[str]) -> np.ndarray:
        """:meth:`similarity` of a model's original maps of ``ids`` and those of one of its states (through
        :meth:`scored`)."""
        return self.scored("similarity", name, model_index, state, method, ids,
                           lambda: self.similarity(name, self.stack(model_index, "original", method, ids),
                                                   self.stack(model_index, state, method, ids)))

    def similarity(self, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """:func:`similarity` at this evaluation's SSIM data range."""
        return similarity(name, a, b, data_range=self.config.data_range)

    def ssim(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.similarity("ssim", a, b)

    def pair_baseline(self, stack: np.ndarray, similar: Callable) -> tuple[np.ndarray, np.ndarray]:
        """The random-pair baseline of one method's maps of the SSIM images: per image, the mean similarity
        to its random partners (:meth:`~trust_core.evaluate.run.Evaluation.partners`), NaN without one; and
        how many pairs entered each mean."""
        partners = self.plan.partners()
        values, pairs = np.full(len(stack), np.nan), np.zeros(len(stack), int)
        for k, chosen in enumerate(partners):
            if not chosen.size:
                continue
            found = similar(np.repeat(stack[k][None], len(chosen), 0), stack[chosen])
            values[k] = float(np.nanmean(found)) if np.isfinite(found).any() else np.nan
            pairs[k] = int(np.isfinite(found).sum())
        return values, pairs

    # -- results -----------------------------------------------------------------------------------
    def compare(self, values: np.ndarray, base: np.ndarray):
        """The paired bootstrap comparison with a baseline, on this criterion's passing side."""
        return compare_paired(values, base, better=self.criterion.better, seed=self.seed)

    def entry(self, values: np.ndarray, base: np.ndarray | None = None, *, comparison=None, **more) -> dict:
        """One method's result: the summary of ``values``, its paired comparison with ``base`` (or the
        ``comparison`` made already) and the verdict (``more``: the criterion's own fields, which may
        override these)."""
        s = summarize(values, seed=self.seed)
        c = comparison if comparison is not None else self.compare(values, base)
        return {**s.as_dict(), "baseline": c.baseline, "difference": c.difference,
                "difference_ci": [c.ci_low, c.ci_high], "n_paired": c.n, "verdict": c.verdict,
                "paper_rule": None, **more}

    def result(self, methods: dict, tables: dict, *, metric: str | None = None, n_images: int | None = None,
               **details) -> CriterionResult:
        """The criterion's typed result: its rule and paper rule from the registry, the maps it scored."""
        criterion = self.criterion
        mode = self.config.randomization_mode
        block = {"metric": metric or criterion.metric, "n_images": len(self.plan.ssim_ids) if n_images is None
                 else n_images, "methods": methods, **details, "rule": criterion.rule_for(mode),
                 "paper_rule": criterion.paper_rule_for(mode)}
        return CriterionResult.from_block(self.key, block, tables)
