"""Occlusion (Zeiler & Fergus 2014, captum's ``Occlusion``): the drop of the target logit when a square
window of the image (every channel) is replaced by a constant, averaged over the windows covering each
pixel. Windows of ``occlusion_window`` × the image side slide by ``occlusion_stride`` × the side, the last
one clipped at the border (captum's rule: every pixel is covered); the fill is ``occlusion_baseline`` on
the paper's [-1, 1] scale (0: mid grey), mapped through the model's preprocessing. Forward passes only:
one per window and image, plus one per image for its own logit. captum's ``Occlusion`` is its oracle."""
import math

import torch

from ...errors import ConfigError
from ...sets import EXTENDED_SET
from .base import Method, check_number


def geometry(size: int, params: dict) -> tuple[int, int, list[int]]:
    """Window side, stride and start positions along one axis of ``size`` pixels."""
    window = min(size, max(1, round(params["occlusion_window"] * size)))
    stride = max(1, round(params["occlusion_stride"] * size))
    count = math.ceil((size - window) / stride) + 1
    return window, stride, [k * stride for k in range(count)]


def assemble(run, out, _planned):
    x = run.x
    n, c, h, w = x.shape
    fill = run.prep.from_paper_scale(run.params["occlusion_baseline"])
    fill = fill.to(x.device) if isinstance(fill, torch.Tensor) else fill
    win_h, _, rows = geometry(h, run.params)
    win_w, _, cols = geometry(w, run.params)
    masks = torch.zeros((len(rows) * len(cols), 1, h, w), device=x.device)
    for k, (top, left) in enumerate((r, q) for r in rows for q in cols):
        masks[k, :, top:top + win_h, left:left + win_w] = 1
    weights = masks.sum(0)  # windows covering each pixel
    targets = run.targets.to(x.device)
    maps = []
    reference = run.forward(x).gather(1, targets.view(-1, 1))[:, 0]
    step = max(1, run.batch_size)
    for i in range(n):
        drops = torch.cat([reference[i] - run.forward(x[i][None] * (1 - m) + fill * m)[:, int(targets[i])]
                           for m in masks.split(step)])
        maps.append(((drops.view(-1, 1, 1, 1) * masks).sum(0) / weights).expand(c, h, w))
    return torch.stack(maps)


def _forwards(params, size: int = 224) -> int:
    """Forward-only passes per image at an input side of ``size``."""
    return len(geometry(size, params)[2]) ** 2 + 1


def validate(params):
    for name in ("occlusion_window", "occlusion_stride"):
        check_number(params, name, 0, 1, open_low=True, meaning="a fraction of the image side")
    if params["occlusion_stride"] > params["occlusion_window"]:
        raise ConfigError(f"occlusion_stride ({params['occlusion_stride']}) must not exceed occlusion_window "
                          f"({params['occlusion_window']}): pixels between windows would get no value (captum's rule)")
    check_number(params, "occlusion_baseline", -1, 1, meaning="a value on the paper's scale")


METHOD = Method(
    "occlusion", "Occlusion", "Zeiler & Fergus, ECCV 2014 (captum Occlusion)",
    "drop of the target logit when a sliding window is filled with a constant, averaged per pixel",
    ("occlusion_window", "occlusion_stride", "occlusion_baseline"), group=EXTENDED_SET,
    passes="forward only: (⌈(1 − window)/stride⌉ + 1)² + 1 per image",
    defaults={"occlusion_window": 0.125, "occlusion_stride": 0.0625, "occlusion_baseline": 0.0},
    validate=validate, cost=lambda p: 0, forward_cost=_forwards, plan=lambda run: None, assemble=assemble)
