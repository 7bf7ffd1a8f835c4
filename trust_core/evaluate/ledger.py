"""Per-image measures scored the moment each unit finishes, appended to disk: what the criteria then read
instead of the maps.

When a unit's maps are done (:meth:`~trust_core.evaluate.run.Evaluation.keep`), and before they go to the
spool, the ledger scores what that unit alone, or with maps already spooled, decides:

* ``auprc``: the AUPRC of each map of a positive image (utility, and every model state's row of
  ``utility_by_model``: a model's original on the utility images, a randomized state on the SSIM images),
  in the form the utility criterion scores; ``pointing_game`` and ``energy_pointing_game`` of the main
  model's original maps of the utility images;
* ``similarity`` and ``emprt``: each randomized state's maps against the same model's original maps (SSIM,
  Spearman ρ or HOG similarity, as the randomization-family criteria run ask, each in the form it scores;
  eMPRT at the last state) — the original's maps, finished before in the run's order, are read back from
  the spool, nothing else is.

Each unit's rows are appended to disk as they are scored: one Parquet file per unit in the spool's
``measures/`` folder (measure, name — the similarity or the pointing game's tie rule —, form, model,
state, image, method, value), written beside and renamed, so the measures of the units done are readable
at any moment (scratch data: removed with the spool). Scoring reads them back (:meth:`lookup`) and scores
from the maps only what the ledger does not hold: what compares images across units (the random-pair
baseline, repeatability and reproducibility, sMPRT's noisy copies, mIoU's threshold tuned on other images,
data randomization), a state whose original finished after it (the Ray engine finishes units in any
order), or a measure the ledger could not score (a map the criterion itself refuses, e.g. against an empty
mask: it then says so as it always did). The values are those scoring from the maps gives, bit for bit:
every measure is per image, whatever the images scored with it (:func:`~trust_core.metrics.core.auprc_batch`
and :func:`~trust_core.metrics.core.ssim_batch` reduce a lone image as they do one among others).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

LEDGER_FOLDER = "measures"
COLUMNS = ("measure", "name", "form", "model", "state", "image_id", "method", "value")


class MeasureLedger:
    """The measures of one run's finished units, appended to ``folder / measures /``, a file per unit.

    ``units``: the run's plan (the last state of each replicate's cascade, which eMPRT compares)."""

    def __init__(self, folder: str | Path, plan, spool, units=()):
        from . import criteria as registry
        from .criteria import UNCLIPPED

        self.folder = Path(folder) / LEDGER_FOLDER
        self.plan, self.spool = plan, spool
        chosen = set(plan.criteria)

        def form(key: str) -> str:
            return registry.scored_form(key, plan.scored_maps)

        # measures of one map and its mask: (measure, name, form, the images of an original, main model only)
        self.single: list[tuple[str, str, str, set, bool]] = []
        if "utility" in chosen:  # the main model's row and every model state's (utility_by_model)
            self.single.append(("auprc", "", form("utility"), set(plan.utility_ids), False))
        for key in ("pointing_game", "energy_pointing_game"):
            if key in chosen:  # the main model's original maps of the utility images
                ties = ("any" if form(key) == UNCLIPPED else "share") if key == "pointing_game" else ""
                self.single.append((key, ties, form(key), set(plan.utility_ids), True))
        # measures of a randomized state's maps against its model's original ones: (measure, name, form)
        self.pairs: list[tuple[str, str, str]] = sorted(
            {("similarity", registry.CRITERIA[key].column, form(key)) for key in chosen
             if registry.CRITERIA[key].scorer == "randomization"})
        if "emprt" in chosen:
            self.pairs.append(("emprt", "", form("emprt")))
        self.last = max((u.state_index for u in units), default=0)
        self._index: dict[tuple, dict[str, float]] | None = None  # read back once the units are done
        self.rows = 0  # measures appended
        self.files = 0  # units that gave any

    # -- as units finish -------------------------------------------------------------------------------
    def add(self, unit, output) -> None:
        """Score a finished unit (its maps still in memory, ``output``) and append its rows."""
        if self._index is not None:
            raise RuntimeError("the measure ledger is read: no unit can be added to it any more")
        if unit.noisy_copy or output.spooled:
            return
        from ..errors import MetricError

        rows: list[tuple] = []
        for measure, name, form, images, original_only in self.single:
            main = unit.model_index == 0 and unit.state == "original"
            if unit.model_index < self.plan.trained and (main or not original_only):
                if unit.state != "original":  # utility_by_model scores a randomized state on its positives
                    images = set(self.plan.ssim_ids) | set(self.plan.utility_ids)  # (the SSIM images)
                try:
                    rows += self._single(unit, output, measure, name, form, images)
                except MetricError:
                    pass  # not scorable here (an empty mask…): the criterion meets it in the maps and says so
        if self.pairs and unit.state != "original" and unit.model_index in self.plan.replicates:
            try:
                rows += self._pairs(unit, output)
            except MetricError:
                pass
        if rows:
            self._append(rows)

    @staticmethod
    def _stack(output, form: str) -> dict[str, np.ndarray]:
        from .criteria import CLIPPED

        return output.maps if form == CLIPPED else output.unclipped

    def _single(self, unit, output, measure: str, name: str, form: str, images: set) -> list[tuple]:
        from .criteria.context import per_image, per_map_measure

        keep = [j for j, i in enumerate(unit.image_ids) if i in images]
        if not keep:
            return []
        ids = [unit.image_ids[j] for j in keep]
        masks = self.plan.masks(ids)
        score = per_map_measure(measure, name)
        rows = []
        for method, stack in self._stack(output, form).items():
            values = per_image(score, stack[keep], given=(masks,))
            rows += [(measure, name, form, unit.model_index, unit.state, i, method, float(v))
                     for i, v in zip(ids, values)]
        return rows

    def _pairs(self, unit, output) -> list[tuple]:
        from ..metrics import extra
        from .criteria import CLIPPED
        from .criteria.context import per_image, similarity
        from .spool import CLIPPED_FORM, UNCLIPPED_FORM

        where = self.spool.index.get((unit.model_index, "original", 0), {})
        if not all(i in where for i in unit.image_ids):
            return []  # the original has not finished yet (another engine's order): scored from the maps
        rows, originals = [], {}
        for measure, name, form in self.pairs:
            if measure == "emprt" and unit.state_index != self.last:
                continue  # eMPRT compares the fully randomized state only
            code = CLIPPED_FORM if form == CLIPPED else UNCLIPPED_FORM
            for method, stack in self._stack(output, form).items():
                if (method, code) not in originals:  # read back once per form: what these measures need
                    originals[method, code] = np.stack([self.spool.read(where[i][method], code)
                                                        for i in unit.image_ids])
                original = originals[method, code]
                values = (per_image(extra.emprt, original, stack) if measure == "emprt"
                          else similarity(name, original, stack, data_range=self.plan.config.data_range))
                rows += [(measure, name, form, unit.model_index, unit.state, i, method, float(v))
                         for i, v in zip(unit.image_ids, values)]
        return rows

    def _append(self, rows: list[tuple]) -> None:
        import os

        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(zip(*rows))
        table = pa.table({"measure": pa.array(columns[0], pa.string()), "name": pa.array(columns[1], pa.string()),
                          "form": pa.array(columns[2], pa.string()), "model": pa.array(columns[3], pa.int32()),
                          "state": pa.array(columns[4], pa.string()), "image_id": pa.array(columns[5], pa.string()),
                          "method": pa.array(columns[6], pa.string()), "value": pa.array(columns[7], pa.float64())})
        self.folder.mkdir(exist_ok=True)
        path = self.folder / f"unit-{self.files:06d}.parquet"
        pq.write_table(table, path.with_suffix(".tmp"))  # scratch data: renamed whole, not synced to disk
        os.replace(path.with_suffix(".tmp"), path)
        self.files += 1
        self.rows += len(rows)

    # -- scoring ---------------------------------------------------------------------------------------
    def lookup(self, measure: str, name: str, form: str, model: int, state: str, method: str,
               ids) -> np.ndarray | None:
        """The measure of ``ids`` (in their order) as the ledger holds it, or None where it lacks any."""
        if self._index is None:
            self._index = self._read()
        found = self._index.get((measure, name, form, model, state, method))
        if found is None or not all(i in found for i in ids):
            return None
        return np.array([found[i] for i in ids], dtype=float)

    def _read(self) -> dict[tuple, dict[str, float]]:
        """Every unit's rows, read back from its file."""
        import pyarrow.parquet as pq

        index: dict[tuple, dict[str, float]] = {}
        for k in range(self.files):
            table = pq.read_table(self.folder / f"unit-{k:06d}.parquet").to_pydict()
            for row in zip(*(table[c] for c in COLUMNS)):
                index.setdefault(tuple(row[:5]) + (row[6],), {})[row[5]] = row[7]
        return index
