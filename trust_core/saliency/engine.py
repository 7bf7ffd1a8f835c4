"""Batched input-gradient engine shared by all gradient-based methods.

Work is described as *paths*: an end point (an image or a noisy copy), a constant start (a baseline
value) and the α values at which the gradient of the target logit is needed
(x(α) = start + α·(end − start)). Every (path, α) point of every method and every image is flattened onto
the batch axis and run in balanced chunks of at most ``batch_size`` forward+backward passes; per path the
engine returns the sum of gradients over its α values and, where asked, the gradient at α = 1 on its own
(so SmoothGrad reads its samples off Smooth IG's paths, and IG and XRAI reuse the plain gradient as their
α = 1 step).

Order of the points: the plain ones (each clean image at α = 1) first — their logits fix the
predicted-class targets before any other row of their chunk is differentiated, and the same backward
pass gives Grad-CAM its layer activations and gradients — then the Guided Backprop ones, which share
the chunk under ReLUs guided for their rows only (the forward is the same), then the points on clean
images, and last those on noisy copies, whose noise may still be drawn meanwhile (``bank_extra``).
No chunk is a lone small pass, and the host waits for the device only where a result is needed.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..models.info import info_of
from .guided import guided_relus


@dataclass
class PathSet:
    """Paths to integrate, in insertion order."""

    end_index: list[int] = field(default_factory=list)  # row of the end bank
    start: list = field(default_factory=list)
    alphas: list[torch.Tensor] = field(default_factory=list)
    image: list[int] = field(default_factory=list)
    guided: list[bool] = field(default_factory=list)
    plain: list[bool] = field(default_factory=list)  # the clean image at α = 1: targets + Grad-CAM
    late: list[bool] = field(default_factory=list)  # run after the others, in chunks of their own

    def add(self, *, end_index: int, image: int, alphas, start=0.0, guided: bool = False,
            plain: bool = False) -> int:
        self.end_index.append(end_index)
        # a float (the paper's scalar baselines) or a (C, 1, 1) tensor (a per-channel normalization's black)
        self.start.append(start if isinstance(start, torch.Tensor) else float(start))
        self.alphas.append(torch.as_tensor(alphas, dtype=torch.float64).reshape(-1))
        self.image.append(image)
        self.guided.append(guided)
        self.plain.append(plain)
        self.late.append(False)
        return len(self.image) - 1

    def mark_late(self, first: int) -> None:
        """Paths from index ``first`` on run after every other point, chunked apart (a method beyond the
        paper: the paper's points keep the chunks they have without it)."""
        for i in range(first, len(self.late)):
            if not self.plain[i]:
                self.late[i] = True

    @property
    def n_points(self) -> int:
        return int(sum(len(a) for a in self.alphas))


@dataclass
class EngineOutput:
    sums: torch.Tensor  # (P, C, H, W): Σ_α ∂y/∂x(α) per path
    endpoints: torch.Tensor  # (P, C, H, W): ∂y/∂x at α = 1 (zeros where the path has no α = 1)
    targets: torch.Tensor  # (N,) class explained per image
    cams: torch.Tensor | None  # (N, H, W) Grad-CAM (after ReLU and upsampling), if a layer was given
    passes: int
    bank: torch.Tensor | None  # the end rows, ``bank_extra`` included
    layer_acts: torch.Tensor | None = None  # (N, C, h, w) the layer's activations at the plain points
    layer_grads: torch.Tensor | None = None  # (N, C, h, w) their gradients (``keep_layer``)
    coarse_cams: torch.Tensor | None = None  # (N, h, w) Grad-CAM before upsampling (float32): ``cams`` is its
    # upsampling, which the store predicts from it (``Method.upsampled_from``)


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
    handles = [torch.backends.cudnn.conv, torch.backends.cudnn.rnn, torch.backends.cuda.matmul]
    saved = [h.fp32_precision for h in handles]
    try:
        for h in handles:
            h.fp32_precision = mode
        yield
    finally:
        for h, value in zip(handles, saved):
            h.fp32_precision = value


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


def tf1_resize_bilinear(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear(align_corners=False)`` without half-pixel centres, (N, C, h, w) →
    (N, C, H, W): the source of output pixel ``i`` is ``i × h / H`` (floor and the next pixel, clamped
    at the last one), so the content moves toward the top-left by half an input pixel compared with
    half-pixel-centred bilinear (20 px when an 8×8 map becomes 320×320)."""
    h, w = images.shape[-2:]
    out_h, out_w = size

    def weights(n_in: int, n_out: int):
        src = torch.arange(n_out, dtype=torch.float32, device=images.device) * (n_in / n_out)
        low = src.floor().long().clamp(max=n_in - 1)
        return low, (low + 1).clamp(max=n_in - 1), (src - low.float())

    y0, y1, wy = weights(h, out_h)
    x0, x1, wx = weights(w, out_w)
    wy, wx = wy.view(-1, 1), wx.view(1, -1)
    top = images[..., y0, :]
    bottom = images[..., y1, :]
    rows = top + (bottom - top) * wy
    left, right = rows[..., x0], rows[..., x1]
    return left + (right - left) * wx


def upsample_cam(cam: torch.Tensor, size: tuple[int, int], rule: str) -> torch.Tensor:
    """Grad-CAM (N, 1, h, w) upsampled to ``size`` by one of the registry's ``gradcam_interpolation``
    rules: 'tf1_legacy' (see :func:`tf1_resize_bilinear`), 'bilinear' (half-pixel centres), 'bicubic'
    (half-pixel centres; its overshoot below 0 is clipped, the map being a ReLU) or 'nearest'."""
    if rule == "tf1_legacy":
        return tf1_resize_bilinear(cam, size)
    if rule == "bilinear":
        return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    if rule == "bicubic":
        return F.interpolate(cam, size=size, mode="bicubic", align_corners=False).clamp(min=0)
    if rule == "nearest":
        return F.interpolate(cam, size=size, mode="nearest")
    raise ValueError(f"unknown Grad-CAM interpolation {rule!r}")


def weighted_cam(weights: torch.Tensor, acts: torch.Tensor, size: tuple[int, int], rule: str) -> torch.Tensor:
    """The class activation map of every CAM method: ReLU(Σ_c w_c A_c) of (N, C) — or (N, C, 1, 1) —
    channel weights and (N, C, h, w) activations, summed in their dtype, then as float32 upsampled to
    ``size`` by :func:`upsample_cam` → (N, H, W). Grad-CAM (gradient means), Grad-CAM++ (α-weighted
    positive gradients) and Score-CAM (softmax of masked-image logits) differ only in ``weights``."""
    return upsample_cam(class_activation(weights, acts), size, rule)[:, 0]


def class_activation(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """ReLU(Σ_c w_c A_c) at the layer's resolution, (N, 1, h, w) float32: :func:`weighted_cam` before upsampling."""
    if weights.dim() == 2:
        weights = weights[:, :, None, None]
    return F.relu((weights * acts).sum(dim=1, keepdim=True)).float()


def token_grid(acts: torch.Tensor) -> torch.Tensor:
    """A Grad-CAM feature map as (N, C, h, w): convolutional maps as they are (square inputs give square
    maps; a channels-last (N, h, w, C) map is permuted); a vision transformer's tokens (N, T, D) reshaped
    to their square grid after dropping the leading class/register tokens (pytorch-grad-cam's
    ``reshape_transform`` for ViTs, with the grid side from T)."""
    if acts.dim() == 4:
        if acts.shape[2] == acts.shape[3]:  # (N, C, h, w)
            return acts
        if acts.shape[1] == acts.shape[2]:  # channels last (N, h, w, C): Swin, some timm stages
            return acts.permute(0, 3, 1, 2)
    if acts.dim() == 3:
        n, tokens, dim = acts.shape
        side = math.isqrt(tokens)
        prefix = tokens - side * side
        if side > 1 and prefix <= 8:
            return acts[:, prefix:].reshape(n, side, side, dim).permute(0, 3, 1, 2)
    raise ValueError(f"the Grad-CAM layer's output {tuple(acts.shape)} is neither a feature map (N, C, h, w) "
                     f"nor a square grid of tokens (N, T, D): choose another gradcam_layer")


def _chunks(n_points: int, batch_size: int) -> list[tuple[int, int]]:
    """``[begin, end)`` ranges of at most ``batch_size``, as equal as possible (no small last chunk)."""
    if n_points == 0:
        return []
    count = -(-n_points // batch_size)
    bounds = [round(i * n_points / count) for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def run_paths(model: torch.nn.Module, bank: torch.Tensor, paths: PathSet, *, n_images: int,
              targets: torch.Tensor | None, device: torch.device, batch_size: int,
              precision: str = "fp32", gradcam_layer: torch.nn.Module | None = None,
              gradcam_interpolation: str = "bilinear", bank_extra=None, keep_layer: bool = False) -> EngineOutput:
    """Run every (path, α) point in chunks; see the module docstring. ``bank_extra``: a future of more
    end rows (the noisy copies), appended to ``bank`` when a chunk first needs them. ``keep_layer``: also
    return the Grad-CAM layer's activations and gradients of each image's plain point (Grad-CAM++,
    Score-CAM)."""
    channels_last = info_of(model).channels_last
    n_paths = len(paths.image)
    shape = bank.shape[1:]
    sums = torch.zeros((n_paths, *shape), dtype=torch.float32, device=device)
    endpoints = torch.zeros_like(sums)
    resolved = targets.clone().to(device) if targets is not None else None
    cams = coarse_cams = None
    layer_acts = layer_grads = None
    if n_paths == 0:  # forward-only methods alone: nothing to differentiate
        if targets is None:
            raise ValueError("run_paths needs explicit targets when no plain point is given")
        extra = [bank_extra.result().to(device)] if bank_extra is not None else []
        return EngineOutput(sums=sums, endpoints=endpoints, targets=resolved, cams=None, passes=0,
                            bank=torch.cat([bank, *extra]))

    point_path = torch.cat([torch.full((len(a),), i, dtype=torch.long) for i, a in enumerate(paths.alphas)])
    point_alpha = torch.cat(paths.alphas)
    end_rows_cpu = torch.tensor(paths.end_index, dtype=torch.long)
    is_guided = torch.tensor(paths.guided)[point_path]
    is_plain = torch.tensor(paths.plain)[point_path] & (point_alpha == 1.0)
    on_extra = end_rows_cpu[point_path] >= bank.shape[0]
    is_late = torch.tensor(paths.late, dtype=torch.bool)[point_path]
    rank = torch.where(is_late, 4, torch.where(is_plain, 0, torch.where(is_guided, 1, torch.where(on_extra, 3, 2))))
    order = torch.sort(rank, stable=True).indices
    n_early = int((~is_late).sum())
    if resolved is None and not bool(is_plain.any()):
        raise ValueError("run_paths needs explicit targets when no plain point is given")
    if all(isinstance(s, float) for s in paths.start):
        starts = torch.tensor(paths.start, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
    else:  # per-channel starts (P, C, 1, 1)
        starts = torch.stack([torch.as_tensor(s, dtype=torch.float32, device=device).reshape(-1, 1, 1)
                              .expand(shape[0], 1, 1) for s in paths.start])
    end_rows = end_rows_cpu.to(device)
    images_of_path = torch.tensor(paths.image, dtype=torch.long, device=device)
    if resolved is None:
        resolved = torch.full((n_images,), -1, dtype=torch.long, device=device)

    captured: dict[str, torch.Tensor] = {}
    hook = None
    if gradcam_layer is not None:
        # The layer's output tensor itself: an in-place ReLU after it (torchvision DenseNet's
        # F.relu(features, inplace=True)) rectifies it in plain and guided passes alike (guided.py keeps
        # in-place ReLUs in place), so Grad-CAM sees the map that reaches the pooling, as the registry's.
        hook = gradcam_layer.register_forward_hook(
            lambda _m, _i, out: captured.__setitem__("acts", out[0] if isinstance(out, (tuple, list)) else out))
    passes = 0
    try:
        with fp32_mode(device, precision):
            chunks = _chunks(n_early, batch_size) + [(n_early + b, n_early + e)
                                                     for b, e in _chunks(len(order) - n_early, batch_size)]
            for begin, end in chunks:
                chunk = order[begin:end]
                if bank_extra is not None and bool(on_extra[chunk].any()):
                    bank = torch.cat([bank, bank_extra.result().to(device)])
                    bank_extra = None
                plain_rows = is_plain[chunk]
                guided_rows = is_guided[chunk]
                at_one = torch.nonzero(point_alpha[chunk] == 1.0).squeeze(1).to(device)
                plain_at = torch.nonzero(plain_rows).squeeze(1).to(device)
                has_plain, has_guided = bool(plain_rows.any()), bool(guided_rows.any())
                pp = point_path[chunk].to(device)
                alpha = point_alpha[chunk].to(device=device, dtype=torch.float32).view(-1, 1, 1, 1)
                start = starts[pp]
                x = start + alpha * (bank[end_rows[pp]] - start)  # (B, C, H, W)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                x.requires_grad_(True)
                capture = has_plain and gradcam_layer is not None
                captured.clear()
                mode = guided_relus(guided_rows.to(device)) if has_guided else contextlib.nullcontext()
                with torch.enable_grad(), mode, autocast(device, precision):
                    logits = model(x)
                logits = logits.float()
                images = images_of_path[pp]
                if has_plain:  # targets of the images whose clean point is in this chunk
                    plain_images = images[plain_at]
                    plain_logits = logits.detach()[plain_at]
                    current = resolved[plain_images]
                    resolved[plain_images] = torch.where(current < 0, plain_logits.argmax(1), current)
                chosen = logits.gather(1, resolved[images].clamp(min=0).view(-1, 1)).sum()
                wrt = [x, captured["acts"]] if capture else [x]
                grads = torch.autograd.grad(chosen, wrt)
                passes += len(chunk)
                g = grads[0].float()
                sums.index_add_(0, pp, g)
                endpoints[pp[at_one]] = g[at_one]
                if capture:  # Grad-CAM of the plain rows
                    acts = token_grid(captured["acts"][plain_at].float())
                    acts_grad = token_grid(grads[1][plain_at].float())
                    weights = acts_grad.mean(dim=(2, 3), keepdim=True)
                    coarse = class_activation(weights, acts).detach()
                    cam = upsample_cam(coarse, tuple(shape[1:]), gradcam_interpolation)[:, 0]
                    if cams is None:
                        cams = torch.zeros((n_images, *shape[1:]), device=device)
                        coarse_cams = torch.zeros((n_images, *coarse.shape[2:]), device=device)
                    cams[plain_images] = cam
                    coarse_cams[plain_images] = coarse[:, 0]
                    if keep_layer:
                        if layer_acts is None:
                            layer_acts = acts.new_zeros((n_images, *acts.shape[1:]))
                            layer_grads = acts.new_zeros((n_images, *acts.shape[1:]))
                        layer_acts[plain_images] = acts.detach()
                        layer_grads[plain_images] = acts_grad.detach()
    finally:
        if hook is not None:
            hook.remove()
    if bank_extra is not None:  # no point ended on them
        bank = torch.cat([bank, bank_extra.result().to(device)])
    return EngineOutput(sums=sums, endpoints=endpoints, targets=resolved, cams=cams,
                        passes=passes, bank=bank, layer_acts=layer_acts, layer_grads=layer_grads,
                        coarse_cams=coarse_cams)
