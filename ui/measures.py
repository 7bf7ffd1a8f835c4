"""Per-image localization measurements beside a map, each on the map form its criterion scores by default
(the criteria registry's ``maps``): AUPRC on the paper's clipped map, the energy pointing game and the
pointing-game hit on the unclipped attribution (Quantus's rule: a hit when any tied maximum is inside)."""
from __future__ import annotations

from trust_core.evaluate.criteria import CRITERIA, UNCLIPPED
from trust_core.metrics import auprc
from trust_core.metrics import extra


POINTING_HELP = ("1 when the map's maximum lies inside the ground truth, 0 when outside; with tied maxima, 1 when any "
                 "of them is inside (Quantus's rule), on the unclipped map")


def _form(result, key: str, criterion: str, j: int):
    return (result.unclipped if CRITERIA[criterion].maps == UNCLIPPED else result)[key][j]


def localization_measures(result, key: str, j: int, mask) -> dict:
    """``{"AUPRC", "mass inside GT", "pointing hit"}`` of image ``j``'s map of method ``key`` (None where the
    map is flagged or the film has no ground truth)."""
    if result.flags[key][j] is not None or not mask.any():
        return {"AUPRC": None, "mass inside GT": None, "pointing hit": None}
    return {"AUPRC": auprc(_form(result, key, "utility", j), mask),
            "mass inside GT": float(extra.energy_pointing_game(_form(result, key, "energy_pointing_game", j)[None],
                                                               mask[None])[0]),
            "pointing hit": float(extra.pointing_game(_form(result, key, "pointing_game", j)[None], mask[None])[0])}
