"""The registry's torchvision-based architectures (loaded on first use: torchvision costs about a second to
import, which the registry's names and block lists do not need)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm


class DenseNet(tvm.DenseNet):
    """torchvision DenseNet whose final ReLU is a module (same parameters and state_dict keys)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.final_relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.final_relu(self.features(x))  # (B, C, h, w): the Grad-CAM feature map
        out = F.adaptive_avg_pool2d(features, (1, 1))
        return self.classifier(torch.flatten(out, 1))


def densenet121(num_classes: int) -> nn.Module:
    return DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                    num_classes=num_classes)


def densenet_tiny(num_classes: int) -> nn.Module:
    return DenseNet(growth_rate=12, block_config=(2, 2, 2, 2), num_init_features=24, bn_size=2,
                    num_classes=num_classes)


def inception_v3(num_classes: int) -> nn.Module:
    # aux_logits=False: the auxiliary head is unused at inference (and so never randomized);
    # transform_input=False: preprocessing is the protocol's x/255*2-1, done once, outside the model.
    return tvm.inception_v3(weights=None, num_classes=num_classes, aux_logits=False,
                            transform_input=False, init_weights=True)


class ResNet(tvm.ResNet):
    """torchvision ResNet with configurable stage widths (torchvision fixes them at 64…512)."""

    def __init__(self, block, layers, *, widths=(64, 128, 256, 512), num_classes: int = 1000):
        super().__init__(block, layers, num_classes=num_classes)
        if tuple(widths) == (64, 128, 256, 512):
            return
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        for i, width in enumerate(widths[1:], start=2):
            setattr(self, f"layer{i}", self._make_layer(block, width, layers[i - 1], stride=2))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for module in self.modules():  # torchvision's initialization, for the rebuilt layers
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)


def resnet_tiny(num_classes: int) -> nn.Module:
    return ResNet(tvm.resnet.BasicBlock, [1, 1, 1, 1], widths=(16, 32, 64, 128), num_classes=num_classes)


def resnet18(num_classes: int) -> nn.Module:
    return tvm.resnet18(weights=None, num_classes=num_classes)
