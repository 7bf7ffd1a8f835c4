"""Batched input-gradient engine shared by all gradient-based methods.

Work is described as *paths*: an end point (an image or a noisy copy), a constant start (a baseline
value) and the α values at which the gradient of the target logit is needed
(x(α) = start + α·(end − start)). Every (path, α) point of every method and every image is flattened onto
the batch axis and run in chunks of ``batch_size`` forward+backward passes; per path the engine returns
the sum of gradients over its α values and, where asked, the gradient at α = 1 on its own (so SmoothGrad
reads its samples off Smooth IG's paths, and IG and XRAI reuse the plain gradient as their α = 1 step).
The plain points run first: they fix the predicted-class targets and, in the same backward pass, give
Grad-CAM its layer activations and gradients. Guided Backprop points run under guided ReLUs.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .guided import guided_relus


@dataclass
class PathSet:
    """Paths to integrate, in insertion order."""

    end_index: list[int] = field(default_factory=list)  # row of the end bank
    start: list[float] = field(default_factory=list)
    alphas: list[torch.Tensor] = field(default_factory=list)
    image: list[int] = field(default_factory=list)
    guided: list[bool] = field(default_factory=list)
    plain: list[bool] = field(default_factory=list)  # the clean image at α = 1: targets + Grad-CAM

    def add(self, *, end_index: int, image: int, alphas, start: float = 0.0, guided: bool = False,
            plain: bool = False) -> int:
        self.end_index.append(end_index)
        self.start.append(float(start))
        self.alphas.append(torch.as_tensor(alphas, dtype=torch.float64).reshape(-1))
        self.image.append(image)
        self.guided.append(guided)
        self.plain.append(plain)
        return len(self.image) - 1

    @property
    def n_points(self) -> int:
        return int(sum(len(a) for a in self.alphas))


@dataclass
class EngineOutput:
    sums: torch.Tensor  # (P, C, H, W): Σ_α ∂y/∂x(α) per path
    endpoints: torch.Tensor  # (P, C, H, W): ∂y/∂x at α = 1 (zeros where the path has no α = 1)
    targets: torch.Tensor  # (N,) class explained per image
    cams: torch.Tensor | None  # (N, H, W) Grad-CAM (after ReLU and upsampling), if a layer was given
    logits: torch.Tensor | None  # (N, K) logits of the clean images (when plain points ran)
    passes: int


@contextlib.contextmanager
def frozen_eval(model: torch.nn.Module):
    """Parameters without gradients and eval mode for the duration; both restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


@contextlib.contextmanager
def _fp32_matmuls(mode: str):
    """CUDA's float32 convolutions and matrix products as ``'ieee'`` (true fp32) or ``'tf32'`` for the
    duration; the previous settings are restored. PyTorch runs cuDNN convolutions in TF32 by default,
    which is not fp32: the ``fp32`` precision of this engine means IEEE fp32 on GPUs too. The settings
    are process-wide (a concurrent CUDA computation in another thread sees them meanwhile)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):  # PyTorch >= 2.9
        handles = [cudnn.conv, cudnn.rnn, matmul]
        saved = [h.fp32_precision for h in handles]
        try:
            for h in handles:
                h.fp32_precision = mode
            yield
        finally:
            for h, value in zip(handles, saved):
                h.fp32_precision = value
    else:  # older PyTorch: the legacy flags
        saved = (cudnn.allow_tf32, matmul.allow_tf32)
        try:
            cudnn.allow_tf32 = matmul.allow_tf32 = mode == "tf32"
            yield
        finally:
            cudnn.allow_tf32, matmul.allow_tf32 = saved


def fp32_mode(device: torch.device, precision: str):
    """Around forward *and* backward passes: ``fp32`` is IEEE fp32 on GPUs too (the exact default),
    ``tf32`` lets CUDA tensor cores run float32 convolutions and products; a no-op on CPUs and for
    autocast precisions."""
    if device.type != "cuda" or precision not in ("fp32", "tf32"):
        return contextlib.nullcontext()
    return _fp32_matmuls("ieee" if precision == "fp32" else "tf32")


def autocast(device: torch.device, precision: str):
    """Around forward passes only: bf16/fp16 autocast (backward follows the forward's dtypes)."""
    if precision in ("fp32", "tf32"):
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device.type, dtype=dtype)


def run_paths(model: torch.nn.Module, bank: torch.Tensor, paths: PathSet, *, n_images: int,
              targets: torch.Tensor | None, device: torch.device, batch_size: int,
              precision: str = "fp32", gradcam_layer: torch.nn.Module | None = None) -> EngineOutput:
    """Run every (path, α) point in chunks; see the module docstring."""
    channels_last = bool(getattr(model, "trust_channels_last", False))
    n_paths = len(paths.image)
    shape = bank.shape[1:]
    sums = torch.zeros((n_paths, *shape), dtype=torch.float32, device=device)
    endpoints = torch.zeros_like(sums)
    resolved = targets.clone().to(device) if targets is not None else None
    cams = None
    logits_out = None

    point_path = torch.cat([torch.full((len(a),), i, dtype=torch.long) for i, a in enumerate(paths.alphas)])
    point_alpha = torch.cat(paths.alphas)
    guided = torch.tensor(paths.guided)[point_path]
    plain = torch.tensor(paths.plain)[point_path] & (point_alpha == 1.0)
    # Group order: plain points (fix targets, Grad-CAM), other gradients, guided gradients.
    groups = [plain, ~plain & ~guided, guided]
    starts = torch.tensor(paths.start, dtype=torch.float32, device=device)
    end_rows = torch.tensor(paths.end_index, dtype=torch.long, device=device)
    images_of_path = torch.tensor(paths.image, dtype=torch.long, device=device)

    captured: dict[str, torch.Tensor] = {}
    hook = None
    if gradcam_layer is not None:
        hook = gradcam_layer.register_forward_hook(lambda _m, _i, out: captured.__setitem__("acts", out))
    passes = 0
    try:
        with fp32_mode(device, precision):
            for group_index, selector in enumerate(groups):
                points = torch.nonzero(selector).squeeze(1)
                for begin in range(0, len(points), batch_size):
                    chunk = points[begin:begin + batch_size]
                    pp = point_path[chunk].to(device)
                    alpha = point_alpha[chunk].to(device=device, dtype=torch.float32).view(-1, 1, 1, 1)
                    start = starts[pp].view(-1, 1, 1, 1)
                    x = start + alpha * (bank[end_rows[pp]] - start)  # (B, C, H, W)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    x.requires_grad_(True)
                    capture = group_index == 0 and gradcam_layer is not None
                    captured.clear()
                    mode = guided_relus() if group_index == 2 else contextlib.nullcontext()
                    with torch.enable_grad(), mode, autocast(device, precision):
                        logits = model(x)
                    logits = logits.float()
                    images = images_of_path[pp]
                    if group_index == 0:
                        if resolved is None:
                            resolved = torch.full((n_images,), -1, dtype=torch.long, device=device)
                        if logits_out is None:
                            logits_out = torch.zeros((n_images, logits.shape[1]), device=device)
                        logits_out[images] = logits.detach()
                        unresolved = resolved[images] < 0
                        if bool(unresolved.any()):
                            resolved[images[unresolved]] = logits.detach()[unresolved].argmax(1)
                    chosen = logits.gather(1, resolved[images].view(-1, 1)).sum()
                    wrt = [x, captured["acts"]] if capture else [x]
                    grads = torch.autograd.grad(chosen, wrt)
                    passes += len(chunk)
                    g = grads[0].float()
                    sums.index_add_(0, pp, g)
                    at_one = alpha.view(-1) == 1.0
                    endpoints[pp[at_one]] = g[at_one]
                    if capture:
                        acts, acts_grad = captured["acts"].float(), grads[1].float()  # (B, c, h, w)
                        weights = acts_grad.mean(dim=(2, 3), keepdim=True)
                        cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
                        cam = F.interpolate(cam, size=shape[1:], mode="bilinear", align_corners=False)
                        if cams is None:
                            cams = torch.zeros((n_images, *shape[1:]), device=device)
                        cams[images] = cam[:, 0].detach()
    finally:
        if hook is not None:
            hook.remove()
    return EngineOutput(sums=sums, endpoints=endpoints, targets=resolved, cams=cams, logits=logits_out,
                        passes=passes)
