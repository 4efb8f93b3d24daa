"""ResNet-101 image backbone of the zero-shot checkpoints (docs/ARCHITECTURE.md §4).

torchvision's Bottleneck blocks, regrouped the way LSeg stores them: `layer1` = stem + torchvision
layer1 (Sequential indices 0..4), `layer2..4` = torchvision's. Stage widths are parameters so the tiny
test variant runs the same code.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from .config import LSegConfig


def _stage(inplanes: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    out = width * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    layers = [Bottleneck(inplanes, width, stride, downsample)]
    layers += [Bottleneck(out, width) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNetBackbone(nn.Module):
    """`pretrained`: (B,3,H,W) → 4w₁ @ H/4, 4w₂ @ H/8, 4w₃ @ H/16, 4w₄ @ H/32."""

    def __init__(self, cfg: LSegConfig):
        super().__init__()
        w = cfg.resnet_widths
        n = cfg.resnet_layers
        self.layer1 = nn.Sequential(
            nn.Conv2d(3, w[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
            _stage(w[0], w[0], n[0], 1),
        )
        self.layer2 = _stage(4 * w[0], w[1], n[1], 2)
        self.layer3 = _stage(4 * w[1], w[2], n[2], 2)
        self.layer4 = _stage(4 * w[2], w[3], n[3], 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        return l1, l2, l3, self.layer4(l3)
