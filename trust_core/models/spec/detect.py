"""Detection with forward hooks: the Grad-CAM layer and the cascade's blocks of a model a spec does not name."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ...errors import ConfigError
from ..registry import forward_order
from ..preprocessing import Preprocessing
from .schema import _err


def _record_outputs(model: nn.Module, prep: Preprocessing) -> list[tuple[str, tuple]]:
    """(module path, output shape) in the order modules *finish* during one forward pass."""
    done: list[tuple[str, tuple]] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            out = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(out, torch.Tensor):
                done.append((name, tuple(out.shape)))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model(_probe(model, prep))
    finally:
        for h in handles:
            h.remove()
    return done


def detect_gradcam_layer(model: nn.Module, prep: Preprocessing) -> str:
    """The last module whose output is a spatial feature map before global pooling.

    Convolutional networks: the module that finishes last with an (N, C, h, w) output, h·w > 1. Vision
    transformers (a ``blocks`` sequence of token blocks with ``norm1``): the last block's ``norm1``, the
    token map whose patch tokens still reach the class token (pytorch-grad-cam's recipe), reshaped to
    its grid by the engine."""
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) and hasattr(blocks[-1], "norm1"):
        return f"blocks.{len(blocks) - 1}.norm1"
    def spatial(shape) -> bool:  # (N, C, h, w) or channels-last (N, h, w, C), h = w > 1 (square inputs)
        return len(shape) == 4 and ((shape[2] == shape[3] > 1) or (shape[1] == shape[2] > 1))

    found = [name for name, shape in _record_outputs(model, prep) if spatial(shape)]
    if not found:
        raise ConfigError("no module of this model outputs a spatial feature map (N, C, h, w): name "
                          "gradcam_layer in the spec (`trust inspect` lists the modules)")
    return found[-1]


def check_gradcam_layer(model: nn.Module, prep: Preprocessing, layer: str, where=None) -> tuple:
    """The layer exists and gives a feature map (or a square token grid); returns its grid shape."""
    from ...saliency.engine import token_grid

    module = _submodule(model, layer, where, "Grad-CAM layer")
    shapes: list = []
    handle = module.register_forward_hook(
        lambda _m, _i, out: shapes.append(out[0] if isinstance(out, (tuple, list)) else out))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model(_probe(model, prep))
    finally:
        handle.remove()
    if not shapes:
        raise _err(f"the Grad-CAM layer {layer!r} does not run in a forward pass: choose a module the model uses",
                   where)
    out = shapes[-1]
    try:
        grid = token_grid(out)
    except ValueError:
        raise _err(f"the Grad-CAM layer {layer!r} outputs {tuple(out.shape)}, not a spatial feature map "
                   f"(N, C, h, w) or a square token grid: choose a convolutional block", where) from None
    if grid.shape[2] * grid.shape[3] < 2 and out.dim() == 4:
        raise _err(f"the Grad-CAM layer {layer!r} outputs a 1×1 map (after global pooling): choose the "
                   f"block before the pooling", where)
    return tuple(grid.shape[1:])


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _stages(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    return [(prefix + name, child) for name, child in module.named_children() if _has_params(child)]


def detect_blocks(model: nn.Module, prep: Preprocessing) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Cascade states: the model's top-level stages that hold parameters, top-down in reverse forward
    order (found with hooks; unused modules dropped). A model with fewer than 4 stages has its heaviest
    stage opened (torchvision's DenseNet is ``features`` + ``classifier``: its dense blocks become the
    stages), and a plain sequence of 4+ blocks holding most of the weights is opened too (a ViT's
    ``blocks``, an EfficientNet's stages)."""
    stages = _stages(model, "")
    while len(stages) < 4:
        openable = [(i, n, c) for i, (n, c) in enumerate(stages) if len(_stages(c, n + ".")) >= 2]
        if not openable:
            break
        i, name, child = max(openable, key=lambda t: sum(p.numel() for p in t[2].parameters()))
        stages[i:i + 1] = _stages(child, name + ".")
    total = sum(p.numel() for p in model.parameters())
    for i in range(len(stages) - 1, -1, -1):  # a plain sequence of many blocks holding most weights
        name, child = stages[i]
        inner = _stages(child, name + ".")
        if (type(child) in (nn.Sequential, nn.ModuleList) and len(inner) >= 4
                and sum(p.numel() for p in child.parameters()) > total / 2):
            stages[i:i + 1] = inner
    order = forward_order(model, _probe(model, prep), [n for n, _ in stages])
    if not order:
        raise ConfigError("no parameterized stage of this model runs in a forward pass: list [cascade] blocks")
    return tuple((p, (p,)) for p in reversed(order))


def _probe(model: nn.Module, prep: Preprocessing) -> torch.Tensor:
    """A deterministic grey test film in the model's input space (1, C, S, S)."""
    g = torch.Generator().manual_seed(0)
    gray = 0.35 + 0.3 * torch.rand((1, 1, prep.size, prep.size), generator=g)
    return prep.batch(gray)


def _submodule(model: nn.Module, path: str, where, what: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n][-8:]
        raise _err(f"the model has no {what} {path!r} (its last modules: {names}; `trust inspect` lists them)",
                   where) from None
