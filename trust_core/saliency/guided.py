"""Guided Backprop for every ReLU, module or functional, without touching the model.

Captum hooks ``nn.ReLU`` modules only, so a functional ``F.relu`` (torchvision DenseNet's final ReLU,
every ReLU of torchvision InceptionV3's ``BasicConv2d``) would pass plain gradients. Here a
:class:`~torch.overrides.TorchFunctionMode` — thread-local, so concurrent app sessions are unaffected —
reroutes ``F.relu``, ``torch.relu``, ``Tensor.relu`` (and the in-place variants) to a ReLU whose backward
is ``max(grad, 0) · [activation > 0]`` (Springenberg et al. 2015), exactly captum's rule.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rows=None):
        out = x.clamp(min=0)
        ctx.save_for_backward(out, rows)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        out, rows = ctx.saved_tensors
        guided = grad_output.clamp(min=0)
        if rows is not None:  # guide only these batch rows: the others get ReLU's plain backward
            guided = torch.where(rows.view(-1, *([1] * (grad_output.dim() - 1))), guided, grad_output)
        return guided * (out > 0).to(grad_output.dtype), None


# the functional and tensor forms, and the ATen operators an exported program (.pt2) calls
class GuidedReLUInplace(torch.autograd.Function):
    """:class:`GuidedReLU` for the in-place forms (``F.relu(x, inplace=True)``, ``x.relu_()``): ``x`` is
    changed in place as the model expects, so that a module hooked before the ReLU (Grad-CAM's layer)
    sees the same rectified map in guided and plain passes."""

    @staticmethod
    def forward(ctx, x, rows=None):
        x.clamp_(min=0)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x, rows)
        return x

    @staticmethod
    def backward(ctx, grad_output):
        return GuidedReLU.backward(ctx, grad_output)


# the functional and tensor forms, and the ATen operators an exported program (.pt2) calls
_RELUS = {F.relu, torch.relu, torch.Tensor.relu, torch.ops.aten.relu.default}
_INPLACE_RELUS = {torch.relu_, torch.Tensor.relu_, F.relu_, torch.ops.aten.relu_.default}


class guided_relus(TorchFunctionMode):
    """Context manager: inside it, every ReLU of the forward pass is a guided ReLU.

    ``rows`` (bool, one per batch row) guides only those rows; the forward is the same either way, so
    Guided Backprop can share a batch with plain gradients (every ReLU input must then lead with the
    batch axis, as in every CNN of the registry).
    """

    def __init__(self, rows: torch.Tensor | None = None):
        super().__init__()
        self.rows = rows
        self.calls = 0  # ReLUs guided: 0 means the model has none (GELU, SiLU…) and GBP is the gradient

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS or func in _INPLACE_RELUS:
            x = args[0]
            if self.rows is not None and (x.dim() == 0 or x.shape[0] != self.rows.shape[0]):
                raise RuntimeError(f"guided ReLU on a tensor of shape {tuple(x.shape)} in a batch of "
                                   f"{self.rows.shape[0]} rows: its first axis is not the batch")
            self.calls += 1
            inplace = func in _INPLACE_RELUS or (func is F.relu and (kwargs.get("inplace") or
                                                                    (len(args) > 1 and bool(args[1]))))
            return (GuidedReLUInplace if inplace else GuidedReLU).apply(x, self.rows)
        return func(*args, **kwargs)
