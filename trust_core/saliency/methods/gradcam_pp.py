"""Grad-CAM++ (Chattopadhay et al. 2018): Grad-CAM with pixel-wise weights α = g² / (2g² + Σ A · g³) (eq. 19,
the exponential-output closed form) of the positive gradients, from the plain pass's layer activations and
gradients (no pass of its own), upsampled by ``gradcam_interpolation``. pytorch-grad-cam's
``GradCAMPlusPlus`` is its oracle."""
import torch
import torch.nn.functional as F

from ..engine import class_activation, weighted_cam
from ...sets import EXTENDED_SET
from .base import Method

EPS = 1e-6  # pytorch-grad-cam's


def cam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """(N, C) Grad-CAM++ channel weights of (N, C, h, w) activations and their gradients."""
    g2 = grads * grads
    g3 = g2 * grads
    total = acts.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + total * g3 + EPS)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (F.relu(grads) * alpha).sum(dim=(2, 3))


def plan(run):
    return run.use_plain()


def assemble(run, out, _plain):
    acts, grads = out.layer_acts.double(), out.layer_grads.double()
    return weighted_cam(cam_weights(acts, grads), acts, tuple(run.x.shape[2:]), run.params["gradcam_interpolation"])


def upsampled_from(run, out, _plain):
    """The class activation map before upsampling (the store predicts the map from it): the same operations
    on the same tensors as :func:`assemble`, at the layer's resolution (cheap)."""
    acts, grads = out.layer_acts.double(), out.layer_grads.double()
    return class_activation(cam_weights(acts, grads), acts)[:, 0]


METHOD = Method(
    "gradcam_pp", "Grad-CAM++", "Chattopadhay et al., WACV 2018",
    "ReLU(Σ_c w_c A_c), w_c = Σ_ij α_ij ReLU(∂y/∂A_c,ij) with α from second and third powers of the gradient",
    ("gradcam_layer", "gradcam_interpolation"), group=EXTENDED_SET, plain=True, needs_layer=True,
    keeps_layer=True, passes="0 (reuses grad's pass)", cost=lambda p: 0, plan=plan, assemble=assemble,
    upsampled_from=upsampled_from)
