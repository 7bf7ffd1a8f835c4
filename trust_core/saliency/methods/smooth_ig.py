"""Smooth IG (Smilkov et al. 2017 over Sundararajan et al. 2017): the mean of squared IG maps of the
noisy copies SmoothGrad draws (the same draws: SmoothGrad reads its samples off these paths)."""
import torch

from .base import Method


def plan(run):
    rows = run.noisy_rows()
    return {i: [run.integration(run.params["smooth_ig_steps"], i, row, run.ig_baseline, False)[0] for row in rows[i]]
            for i in range(run.n)}


def assemble(run, out, paths):
    rows = run.noisy_rows()
    maps = []
    for i in range(run.n):
        noisy = out.bank[rows[i]]  # the same noisy copies the paths ended at
        ig = (noisy - run.ig_baseline) * out.sums[paths[i]] / run.params["smooth_ig_steps"]
        maps.append((ig * ig if run.params["magnitude"] else ig).mean(0))
    return torch.stack(maps)


METHOD = Method(
    "smooth_ig", "Smooth IG", "Smilkov et al. 2017 over Sundararajan et al. 2017",
    "SmoothGrad of Integrated Gradients (mean of squared IG maps)",
    ("n_samples", "noise_spread", "magnitude", "noise_per_model", "smooth_ig_steps", "ig_baseline"),
    uses_noise=True, passes="n_samples × smooth_ig_steps", cost=lambda p: p["n_samples"] * p["smooth_ig_steps"], plan=plan, assemble=assemble)
