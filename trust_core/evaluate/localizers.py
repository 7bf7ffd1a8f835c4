"""The high baselines that come from localizers — U-Net checkpoints or folders of score maps — for an
evaluation: the first localizer's maps for utility, the SSIM between two localizers of one form for
repeatability and reproducibility."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.transforms import resize_image
from ..errors import ConfigError
from ..models.info import info_of
from ..models.preprocessing import paper_preprocessing
from ..saliency.postprocess import minmax_maps
from .criteria.context import similarity


def _sources(evaluation) -> list[tuple[str, str, str]]:
    """(form, name, path) of every localizer: score-map folders first, then checkpoints."""
    return ([("maps", f"score maps {Path(p).name}", p) for p in evaluation.localizer_maps]
            + [("checkpoint", f"localizer {Path(p).name}", p) for p in evaluation.localizer_paths])


def _source_maps(evaluation, source: tuple[str, str, str], ids: list[str]) -> np.ndarray:
    """Score maps (N, S, S) of one localizer, min–max normalized per map like saliency maps (NaN
    where a map is constant), at the classifiers' input size."""
    from ..models.localizer import load_localizer, load_score_maps, predict_maps

    form, _name, path = source
    if form == "maps":
        found = load_score_maps(path, ids, evaluation.size, evaluation.resize)
        missing = [i for i in ids if i not in found]
        if missing:
            raise ConfigError(f"{len(missing)} image(s) have no localizer score map in {path} "
                              f"(e.g. {missing[:3]})")
        raw = np.stack([found[i] for i in ids])
    else:
        model = load_localizer(path)
        size = info_of(model).input_size or evaluation.size
        prep = paper_preprocessing(size, evaluation.resize)
        raw = predict_maps(model, torch.stack([evaluation.model_input(i, prep) for i in ids]))
        raw = np.stack([resize_image(m, evaluation.size) for m in raw])
    normalized, _reasons = minmax_maps(torch.from_numpy(raw.astype(np.float32)))
    return normalized.numpy()


def localizer_baselines(evaluation, criteria: set) -> dict:
    """The high baselines: the first localizer's maps for utility; the SSIM between two localizers
    of the same form (two score-map folders, else two checkpoints: retrained with another seed) for
    repeatability and reproducibility."""
    sources = _sources(evaluation)
    out = {"utility_source": None, "utility_maps": None, "agreement": None, "agreement_pair": None}
    if "utility" in criteria and sources:
        out["utility_source"] = sources[0][1]
        out["utility_maps"] = _source_maps(evaluation, sources[0], evaluation.utility_ids)
    if criteria & {"repeatability", "reproducibility"}:
        for form in ("maps", "checkpoint"):
            same = [s for s in sources if s[0] == form]
            if len(same) >= 2:
                a, b = (_source_maps(evaluation, s, evaluation.ssim_ids) for s in same[:2])
                out["agreement"] = similarity("ssim", a, b, data_range=evaluation.config.data_range)
                out["agreement_pair"] = f"{same[0][1]} vs {same[1][1]}"
                break
    return out
