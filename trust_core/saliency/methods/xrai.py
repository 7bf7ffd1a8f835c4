"""XRAI (Kapishnikov et al. 2019): IG from two baselines (PAIR's default: the image's own black and white)
ranked over Felzenszwalb segments of the film by gain density. The IG paths share the plain pass as their
α = 1 step; segmentation runs beside the passes on a GPU."""
from functools import partial

import torch
from torch.profiler import record_function

from ..xrai import SegmentParams, cached_labels, segment_masks, xrai_rank
from .base import Method


def _segment_params(params) -> SegmentParams:
    return SegmentParams(scales=params["xrai_scales"], sigma=params["xrai_sigma"], min_size=params["xrai_min_size"],
                         resize=params["xrai_resize"], dilation_radius=params["xrai_dilation_radius"])


def plan(run):
    run.use_plain()
    x, prep, params = run.x, run.prep, run.params
    paths = {}
    for i in range(run.n):
        if params["xrai_baselines"] == "image_min_max" and prep.paper:
            baselines = (float(x[i].min()), float(x[i].max()))  # PAIR's: the array's min and max
        elif params["xrai_baselines"] == "image_min_max":  # per channel: the film's own black and white
            baselines = (x[i].amin((1, 2), keepdim=True), x[i].amax((1, 2), keepdim=True))
        else:  # black and white of the model's input space
            baselines = tuple(v.to(x.device) if isinstance(v, torch.Tensor) else v
                              for v in (prep.value(0.0), prep.value(1.0)))
        paths[i] = [(b, *run.integration(params["xrai_steps"], i, i, b, True)) for b in baselines]
    seg = _segment_params(params)
    segmenting = {i: run.beside(partial(cached_labels, run.films[i].permute(1, 2, 0).cpu().numpy(), seg))
                  for i in range(run.n)}
    return paths, segmenting


def _xrai_map(image, attrs, labels, params, seg_params):
    """XRAI of one image from its IG attributions (one per baseline) and its segmentation, on the image's
    device."""
    attr = torch.stack(attrs).mean(0).max(dim=0).values  # mean over baselines, channel max
    with record_function("saliency.xrai.segments"):
        masks = segment_masks(image.permute(1, 2, 0).cpu().numpy(), seg_params, device=image.device,
                              labels=labels.result())
    with record_function("saliency.xrai.rank"):
        return xrai_rank(attr, masks, algorithm=params["xrai_algorithm"], area_threshold=params["xrai_area_threshold"],
                         min_pixel_diff=params["xrai_min_pixel_diff"]).float()


def assemble(run, out, planned):
    paths, segmenting = planned
    x, params, plain = run.x, run.params, run.plain
    seg = _segment_params(params)
    return torch.stack([
        _xrai_map(run.films[i], [(x[i] - b) * (out.sums[p] + (out.endpoints[plain[i]] if shared else 0))
                                 / params["xrai_steps"] for b, p, shared in paths[i]],
                  segmenting[i], params, seg)
        for i in range(run.n)])


def stats(raw):
    negative = (raw < 0).flatten(1).float().mean(1).cpu().tolist()
    return [{"negative_fraction": float(f)} for f in negative]


METHOD = Method(
    "xrai", "XRAI", "Kapishnikov et al., ICCV 2019",
    "IG (black and white baselines) ranked over Felzenszwalb segments, gain density",
    ("xrai_steps", "xrai_baselines", "xrai_algorithm", "xrai_area_threshold", "xrai_min_pixel_diff", "xrai_scales",
     "xrai_sigma", "xrai_min_size", "xrai_dilation_radius", "xrai_resize", "xrai_postprocess"),
    plain=True, passes="2 × (xrai_steps − 1)", after=("ig",),
    postprocess=lambda params: "minmax" if params["xrai_postprocess"] == "minmax" else "normalize",
    cost=lambda p: 2 * (p["xrai_steps"] - 1), plan=plan, assemble=assemble, stats=stats)
