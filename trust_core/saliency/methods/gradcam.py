"""Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_c mean(∂y/∂A_c) A_c) at the target layer, from the plain pass
(the engine computes it per chunk), upsampled by ``gradcam_interpolation``."""
from .base import Method


def plan(run):
    return run.use_plain()


def assemble(run, out, _plain):
    return out.cams


def upsampled_from(run, out, _plain):
    return out.coarse_cams


METHOD = Method(
    "gradcam", "Grad-CAM", "Selvaraju et al., ICCV 2017",
    "ReLU(Σ_c mean(∂y/∂A_c) A_c) at the last conv block, upsampled to the input size (gradcam_interpolation)",
    ("gradcam_layer", "gradcam_interpolation"), plain=True, needs_layer=True, passes="0 (shared with grad)",
    cost=lambda p: 0, plan=plan, assemble=assemble, upsampled_from=upsampled_from)
