"""Score-CAM (Wang et al. 2020): each channel of the layer's activation, upsampled (bilinear, corners
aligned) to the input and min–max normalized, masks the image; the softmax over channels of the target
logits of the masked images weights the activations: ReLU(Σ_c w_c A_c), upsampled by
``gradcam_interpolation``. Forward passes only (one per channel and image); the activations come from the
plain pass. pytorch-grad-cam's ``ScoreCAM`` is its oracle."""
import torch
import torch.nn.functional as F

from ..engine import weighted_cam
from ...sets import EXTENDED_SET
from .base import Method


def plan(run):
    return run.use_plain()


def assemble(run, out, _plain):
    acts = out.layer_acts
    n, channels = acts.shape[:2]
    size = tuple(run.x.shape[2:])
    targets = run.targets
    weights = []
    for i in range(n):
        scores = []
        for chunk in acts[i].split(max(1, run.batch_size)):
            up = F.interpolate(chunk[None].float(), size=size, mode="bilinear", align_corners=True)[0]
            low = up.flatten(1).min(1).values.view(-1, 1, 1)
            high = up.flatten(1).max(1).values.view(-1, 1, 1)
            masks = (up - low) / (high - low + 1e-8)
            scores.append(run.forward(run.x[i][None] * masks[:, None])[:, int(targets[i])])
        weights.append(torch.softmax(torch.cat(scores), dim=0))
    weights = torch.stack(weights).to(acts.device)
    return weighted_cam(weights, acts.float(), size, run.params["gradcam_interpolation"])


METHOD = Method(
    "scorecam", "Score-CAM", "Wang et al., CVPR workshops 2020",
    "ReLU(Σ_c softmax_c(y(x ⊙ norm(up(A_c)))) A_c): channel weights from the logits of masked images",
    ("gradcam_layer", "gradcam_interpolation"), group=EXTENDED_SET, plain=True, needs_layer=True,
    keeps_layer=True, passes="forward only: one per layer channel and image", cost=lambda p: 0,
    forward_cost=lambda p, size=224: 512,
    plan=plan, assemble=assemble)
