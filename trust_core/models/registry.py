"""Architecture registry: how to build each classifier and what the trust protocol needs to know.

Each :class:`Architecture` records the input size, the preprocessing, the Grad-CAM target layer and the
**ordered block list of cascading randomization** (top-down, in forward order, only modules used at
inference; protocol.md section 4). Models are torchvision classes built with ``weights=None`` (no
pretrained weights can be obtained here), with one change where the trust protocol needs it: DenseNet's
functional final ``F.relu`` becomes a module (``final_relu``) so that Grad-CAM can target the final
feature map and hooks can see it. Guided Backprop guides functional ReLUs too (see
``trust_core.saliency``), so InceptionV3's ``F.relu`` calls need no change.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .info import tag
from .unet import UNet


def _torchvision(name: str) -> Callable[[int], nn.Module]:
    """A builder from :mod:`.torchvision_zoo`, imported when a model is first built."""
    def build_model(num_classes: int) -> nn.Module:
        from . import torchvision_zoo

        return getattr(torchvision_zoo, name)(num_classes)
    build_model.__name__ = name
    return build_model


_densenet121, _densenet_tiny, _inception_v3, _resnet_tiny, _resnet18 = (
    _torchvision(n) for n in ("densenet121", "densenet_tiny", "inception_v3", "resnet_tiny", "resnet18"))


def _densenet_blocks(n_blocks: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    blocks: list[tuple[str, tuple[str, ...]]] = [("classifier", ("classifier",)),
                                                 (f"denseblock{n_blocks}",
                                                  ("features.norm5", f"features.denseblock{n_blocks}"))]
    for i in range(n_blocks - 1, 0, -1):
        blocks.append((f"transition{i}", (f"features.transition{i}",)))
        blocks.append((f"denseblock{i}", (f"features.denseblock{i}",)))
    blocks.append(("stem", ("features.norm0", "features.conv0")))
    return tuple(blocks)


_RESNET_BLOCKS = (("fc", ("fc",)), ("layer4", ("layer4",)), ("layer3", ("layer3",)),
                  ("layer2", ("layer2",)), ("layer1", ("layer1",)), ("stem", ("bn1", "conv1")))

_INCEPTION_BLOCKS = (("logits", ("fc",)),) + tuple(
    (name, (name,)) for name in ("Mixed_7c", "Mixed_7b", "Mixed_7a", "Mixed_6e", "Mixed_6d", "Mixed_6c",
                                 "Mixed_6b", "Mixed_6a", "Mixed_5d", "Mixed_5c"))


@dataclass(frozen=True)
class Architecture:
    """What the trust protocol needs to know about one architecture.

    Attributes
    ----------
    name : registry key.
    builder : ``num_classes -> nn.Module`` (random weights).
    input_size : side of the square input.
    gradcam_layer : dotted module path of the last convolutional feature map.
    blocks : cascading-randomization states after the original, top-down in forward order; each is
        (state name, module paths re-initialized at that state).
    preprocessing : human-readable description, recorded with every result.
    demo : small enough for interactive CPU use.
    """

    name: str
    label: str
    builder: Callable[[int], nn.Module]
    input_size: int
    gradcam_layer: str
    blocks: tuple[tuple[str, tuple[str, ...]], ...]
    preprocessing: str = "grayscale [0,1] → 3 channels, x*2-1 ∈ [-1, 1] (the paper's x/255*2-1)"
    demo: bool = False
    paper: bool = False
    notes: str = ""


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("inception_v3", "InceptionV3 (paper)", _inception_v3, 320, "Mixed_7c", _INCEPTION_BLOCKS,
                 paper=True, notes="The paper's main architecture; 12 cascade states."),
    Architecture("densenet121", "DenseNet121 (paper)", _densenet121, 320, "final_relu",
                 _densenet_blocks(4), paper=True,
                 notes="Reproducibility architecture of the paper; final ReLU as a module."),
    Architecture("resnet18", "ResNet18", _resnet18, 320, "layer4", _RESNET_BLOCKS),
    Architecture("densenet_tiny", "Tiny DenseNet (demo)", _densenet_tiny, 128, "final_relu",
                 _densenet_blocks(4), demo=True,
                 notes="torchvision DenseNet, growth 12, blocks (2,2,2,2): for CPU demos."),
    Architecture("resnet_tiny", "Tiny ResNet (demo)", _resnet_tiny, 128, "layer4", _RESNET_BLOCKS,
                 demo=True, notes="torchvision ResNet, BasicBlock × (1,1,1,1), widths 16–128: for CPU demos."),
)}


def _unet(num_classes: int) -> nn.Module:
    return UNet()


# Localization baselines (not classifiers: no Grad-CAM layer, no cascade).
LOCALIZERS: dict[str, Architecture] = {
    "unet": Architecture("unet", "U-Net localizer (baseline)", _unet, 128, "", (),
                         notes="Compact U-Net trained on boxes/masks: the high localization baseline."),
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name] if name in ARCHITECTURES else LOCALIZERS[name]
    except KeyError:
        raise ConfigError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}") from None


def build(arch: str, num_classes: int = 2) -> nn.Module:
    """Build a classifier of a registered architecture with random (``weights=None``) weights."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    spec = get_architecture(arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = spec.builder(num_classes)
    return tag(model, arch=spec.name, input_size=spec.input_size, gradcam_layer=spec.gradcam_layer or None,
               blocks=spec.blocks or None).eval()


def get_module(model: nn.Module, path: str) -> nn.Module:
    """Submodule by dotted path, with a clear error."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise ConfigError(f"the model has no module {path!r}") from None


def forward_order(model: nn.Module, probe: int | torch.Tensor, paths: list[str]) -> list[str]:
    """The given module paths sorted by when they first run in a forward pass (unused ones dropped).
    ``probe``: the input (a model spec's test film), or the side of a 3-channel zero image."""
    order: list[str] = []
    handles = []
    for path in paths:
        module = get_module(model, path)
        handles.append(module.register_forward_pre_hook(
            lambda _m, _i, p=path: order.append(p) if p not in order else None))
    x = torch.zeros(1, 3, probe, probe) if isinstance(probe, int) else probe
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            was_training = model.training
            model.eval()
            model(x)
            model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    return order
