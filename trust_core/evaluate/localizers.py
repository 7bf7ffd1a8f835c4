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


def _uses(evaluation, criteria: set) -> dict[tuple[str, str, str], set[str]]:
    """Which images each localizer source gives maps of (:func:`localizer_baselines`' choice of sources)."""
    sources = _sources(evaluation)
    used: dict[tuple[str, str, str], set[str]] = {}
    if "utility" in criteria and sources:
        used.setdefault(sources[0], set()).update(evaluation.utility_ids)
    if criteria & {"repeatability", "reproducibility"}:
        for form in ("maps", "checkpoint"):
            same = [s for s in sources if s[0] == form]
            if len(same) >= 2:
                for source in same[:2]:
                    used.setdefault(source, set()).update(evaluation.ssim_ids)
                break
    return used


def check_localizers(evaluation, criteria: set) -> None:
    """Every localizer the run will read, checked before the run: a checkpoint loads (a U-Net of ours), a
    score-map folder is there and holds a map of every image it will give (``<id>.npy``, ``.npz`` or
    ``.png``); else the refusal that :func:`localizer_baselines` would give at the end of the run."""
    from ..models.localizer import load_localizer

    for source in _sources(evaluation):
        form, _name, path = source
        if form == "checkpoint":
            load_localizer(path)  # CheckpointError: missing, corrupt, a classifier, another architecture
        elif not Path(path).is_dir():
            raise ConfigError(f"--localizer-maps {path}: no such folder of score maps")
    for (form, _name, path), ids in _uses(evaluation, criteria).items():
        if form == "maps":
            missing = sorted(i for i in ids if not any((Path(path) / f"{i}{s}").is_file() for s in (".npy", ".npz", ".png")))
            if missing:
                raise ConfigError(f"{len(missing)} image(s) have no localizer score map in {path} "
                                  f"(e.g. {missing[:3]}): name them <image id>.npy, .npz or .png")


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
