"""Where and how the passes run: the precisions, the compute copy of a model (channels-last on CPUs) and the
default number of passes per chunk."""
from __future__ import annotations

import copy
import itertools
import threading
import weakref
from collections import OrderedDict

import numpy as np
import torch

from ..models.info import tag

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")

_LAYOUTS: "OrderedDict[int, tuple]" = OrderedDict()  # id(model) → (weakref, state signature, copy)
_LAYOUTS_KEPT = 8
_LAYOUTS_LOCK = threading.Lock()


def _state_signature(model: torch.nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place."""
    return tuple((id(t), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


def compute_model(model: torch.nn.Module, device: torch.device, precision: str) -> torch.nn.Module:
    """The module the passes run on: on CPUs, a channels-last copy of a convolutional model (oneDNN is
    faster with it: DenseNet121 at 320, batch 8, measured 239 vs 263 ms per image in fp32 and 103 vs
    177 ms in bf16); on GPUs the model itself (cuDNN was slower in channels-last for DenseNet121 at 320
    on an H100, batch 128: fp32 2.03 vs 1.53 ms per image, tf32 1.14 vs 0.97, bf16 0.83 vs 0.67). The
    copy is made once per model state (kept for the last few models) and the caller's model is never
    modified."""
    convolutional = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    if not convolutional or device.type == "cuda":
        return model
    signature = _state_signature(model)
    with _LAYOUTS_LOCK:
        entry = _LAYOUTS.get(id(model))
        if entry is not None and entry[0]() is model and entry[1] == signature:
            _LAYOUTS.move_to_end(id(model))
            return entry[2]
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    tag(fast, channels_last=True)
    with _LAYOUTS_LOCK:
        _LAYOUTS[id(model)] = (weakref.ref(model), signature, fast)
        while len(_LAYOUTS) > _LAYOUTS_KEPT:
            _LAYOUTS.popitem(last=False)
    return fast


def default_batch_size(device: torch.device, image_shape, precision: str = "fp32") -> int:
    """Passes per chunk. CPUs (measured on this project's 2-core AMX CPU, DenseNet121 at 320, in the
    channels-last layout the engine uses): fp32 costs about the same per image at any batch (226 ms at
    4, 239 at 8, 310 at 2), bf16 is best at 8 (103 ms; 114 at 16, 132 at 32). GPUs want large batches
    (H100, fp32: 1.62 ms per image at 64, 1.53 at 128, 1.84 at 32) within their memory: DenseNet121 at
    320 peaked at 16.2 GiB for 64 images, so 0.375 GiB per image (1.5 × that) is budgeted within 60 %
    of the free memory (PyTorch's cached blocks counted as free, so that the batch, and the shapes
    cuDNN has already planned for, stay the same from call to call), 16 to 128."""
    pixels = int(np.prod(image_shape[-2:]))
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # PyTorch's own cache
        budget = int(min(128, max(16, 0.6 * free / (0.375 * 2**30))))
    else:
        budget = 8 if precision != "fp32" else 4
    return max(1, min(4 * budget, budget * (320 * 320) // pixels))
