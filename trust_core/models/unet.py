"""The compact U-Net of the localization baseline: torch only, so the registry can import it at the top
(no cycle through the localizer's training and checkpoint code)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UNet(nn.Module):
    """Three-level U-Net (16-32-64-128 channels); input (N, 3, S, S) in [-1, 1], output logits (N, S, S)."""

    def __init__(self, width: int = 16):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        w = width
        self.down1, self.down2, self.down3 = block(3, w), block(w, 2 * w), block(2 * w, 4 * w)
        self.bottom = block(4 * w, 8 * w)
        self.up3, self.up2, self.up1 = (nn.ConvTranspose2d(8 * w, 4 * w, 2, 2), nn.ConvTranspose2d(4 * w, 2 * w, 2, 2),
                                        nn.ConvTranspose2d(2 * w, w, 2, 2))
        self.dec3, self.dec2, self.dec1 = block(8 * w, 4 * w), block(4 * w, 2 * w), block(2 * w, w)
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool2d(d1, 2))
        d3 = self.down3(F.max_pool2d(d2, 2))
        b = self.bottom(F.max_pool2d(d3, 2))
        u3 = self.dec3(torch.cat([self.up3(b), d3], 1))
        u2 = self.dec2(torch.cat([self.up2(u3), d2], 1))
        u1 = self.dec1(torch.cat([self.up1(u2), d1], 1))
        return self.head(u1)[:, 0]
