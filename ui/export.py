"""What the pages export beside their figures: the workbench grid as CSV, each row with its provenance."""
from __future__ import annotations

import pandas as pd


def model_provenance(ws, name: str) -> dict:
    """What decides a model's maps beyond its name: its weights' digest (which also seeds the methods' noise)
    and the seed it was trained with (the model index's, where it has one)."""
    from trust_core.cache import weights_digest

    entry = next((e for e in ws.index() if e["file"] == name), {})
    return {"weights": weights_digest(ws.model(name))[:12], "training seed": entry.get("seed")}


def workbench_csv(table: pd.DataFrame, *, dataset, preset: str, dataset_label: str, provenance: dict) -> str:
    """The grid as CSV, each row with what decides its numbers: the preset, the dataset and its fingerprint, the
    model's weights and training seed, the class explained, the saliency code and the tool's version. The
    grid's helper columns (``map``, ``_cascade``, ``_method``) are left out; ``_explained`` is the class and
    ``_seed`` the preset's noise seed (each map's noise is drawn from it, the film's content and the weights'
    digest)."""
    from trust_core import __version__
    from trust_core.saliency.explain import CODE_VERSION

    out = table.drop(columns=[c for c in ("map", "_cascade", "_method") if c in table]).rename(
        columns={"_explained": "explained class", "_seed": "noise seed"})
    out["preset"] = preset
    out["dataset"] = dataset_label
    out["dataset fingerprint"] = dataset.fingerprint
    out["weights"] = out.model.map(lambda m: provenance[m]["weights"])
    out["training seed"] = out.model.map(lambda m: provenance[m]["training seed"])
    out["saliency code"] = CODE_VERSION
    out["tool"] = f"Saliency Trust Explorer {__version__}"
    return out.round(4).to_csv(index=False)
