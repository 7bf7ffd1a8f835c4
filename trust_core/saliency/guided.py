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
    def forward(ctx, x):
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output.clamp(min=0) * (out > 0).to(grad_output.dtype)


_RELUS = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu_}


class guided_relus(TorchFunctionMode):
    """Context manager: inside it, every ReLU of the forward pass is a guided ReLU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            return GuidedReLU.apply(args[0])
        return func(*args, **(kwargs or {}))
