"""SmoothGrad (Smilkov et al. 2017): the mean of squared gradients over noisy copies of the image.

Planned after Smooth IG: when Smooth IG's paths end at α = 1 on the same noisy copies, their last points
are SmoothGrad's samples (no pass of its own)."""
import torch

from .base import Method


def plan(run):
    rows = run.noisy_rows()
    smooth_ig = run.planned.get("smooth_ig")
    paths = {}
    for i in range(run.n):
        if smooth_ig and float(run.paths.alphas[smooth_ig[i][0]][-1]) == 1.0:
            paths[i] = smooth_ig[i]  # α = 1 of each Smooth IG path is a SmoothGrad sample
        else:
            paths[i] = [run.paths.add(end_index=row, image=i, alphas=[1.0]) for row in rows[i]]
    return paths


def assemble(run, out, paths):
    grads = [out.endpoints[paths[i]] for i in range(run.n)]
    return torch.stack([(g * g if run.params["magnitude"] else g).mean(0) for g in grads])


METHOD = Method(
    "smoothgrad", "SmoothGrad", "Smilkov et al., arXiv:1706.03825, 2017",
    "mean of squared gradients over noisy copies",
    ("n_samples", "noise_spread", "magnitude", "noise_per_model"), uses_noise=True,
    passes="n_samples (free when Smooth IG runs with the same noise)", after=("smooth_ig",),
    cost=lambda p: p["n_samples"], plan=plan, assemble=assemble)
