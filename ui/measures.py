"""Per-image localization measurements beside a map, each on the map form its criterion scores by default
(the criteria registry's ``maps``): AUPRC on the paper's clipped map, the energy pointing game and the
pointing-game hit on the unclipped attribution (Quantus's rule: a hit when any tied maximum is inside)."""
from __future__ import annotations

from trust_core.evaluate.criteria import CRITERIA, UNCLIPPED
from trust_core.metrics import auprc
from trust_core.metrics import extra
from trust_core.saliency.registry import METHODS, method_colour


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


def ssim_curves(results, states, methods, live) -> dict:
    """The Randomization page's curve panel. Per method: this image's SSIM to its original map at every state (live, from the maps shown), the
    cohort's mean from the evaluation (dashed), and the random-pair baseline (dotted), all three in the method's
    colour (the same on every page)."""
    curves = (results or {}).get("criteria", {}).get("randomization", {}).get("methods", {})
    series = []
    for m in methods:
        color = method_colour(m)
        series.append({"name": f"{METHODS[m].label} — this image", "color": color, "dash": "",
                       "values": [None if v is None else round(v, 4) for v in live[m]]})
        curve_ = curves.get(m, {}).get("curve")
        if curve_:
            by_state = {c["state_index"]: c["mean"] for c in curve_}
            series.append({"name": f"{METHODS[m].label} — cohort mean", "color": color, "dash": "dash", "width": 1.5,
                           "values": [1.0] + [by_state.get(i) for i in range(1, len(states))]})
        baseline = curves.get(m, {}).get("baseline")
        if baseline is not None:
            series.append({"name": f"{METHODS[m].label} — random-pair baseline", "dash": "dot",
                           "color": color, "values": [baseline] * len(states)})
    return {"xlabels": [f"{i}: {s}" for i, s in enumerate(states)], "series": series, "ylabel": "SSIM to original"}
