"""GhostNet (Han et al., CVPR 2020, arXiv 1911.11907, Table 7): MobileNetV3's layout with ghost
bottlenecks. A ghost module makes half its output channels with a 1x1 conv and the other half from
those by a cheap 3x3 depthwise conv, then concatenates; a bottleneck is ghost (expand, ReLU) ->
3x3/5x5 depthwise when it strides -> optional SE (hard-sigmoid gate) -> ghost (project, linear),
with an identity shortcut or a depthwise + 1x1 projected one. Not expressible in the MnasNet
grammar (ghost modules, SE on expanded channels with its own rounding, projected shortcuts).
Widths follow the reference code: every channel count rounded to a multiple of 4."""
from __future__ import annotations

import math

import torch
from torch import nn

from search_spaces.builder import ConvBNAct

#: (kernel, expanded, out, SE ratio, stride) per bottleneck (paper Table 7).
LAYERS = ((3, 16, 16, 0, 1), (3, 48, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 0.25, 2),
          (5, 120, 40, 0.25, 1), (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1),
          (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1),
          (5, 672, 160, 0.25, 2), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1),
          (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1))


def make_divisible(value: float, divisor: int = 4) -> int:
    """Round to a multiple of `divisor`, up by one when rounding lost more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class GhostModule(nn.Module):
    def __init__(self, cin: int, cout: int, relu: bool) -> None:
        super().__init__()
        self.cout = cout
        primary = math.ceil(cout / 2)
        act = "relu" if relu else None
        self.primary = ConvBNAct(cin, primary, 1, act=act)
        self.cheap = ConvBNAct(primary, primary, 3, groups=primary, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.primary(x)
        return torch.cat([x, self.cheap(x)], 1)[:, :self.cout]


class HardSqueezeExcite(nn.Module):
    """SE with a hard-sigmoid gate (relu6(x + 3) / 6), squeezing to make_divisible(c * ratio)."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        squeeze = make_divisible(channels * ratio)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * nn.functional.hardsigmoid(s)


class GhostBottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, kernel: int, stride: int,
                 se: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [GhostModule(cin, mid, relu=True)]
        if stride > 1:
            layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, act=None))
        if se > 0:
            layers.append(HardSqueezeExcite(mid, se))
        layers.append(GhostModule(mid, cout, relu=False))
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module = nn.Identity() if cin == cout and stride == 1 else \
            nn.Sequential(ConvBNAct(cin, cin, kernel, stride, groups=cin, act=None),
                          ConvBNAct(cin, cout, 1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class GhostNet(nn.Module):
    """GhostNet at any width (1.0 is the paper's). `stem_stride` 1 suits small inputs."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 stem_stride: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        cin = make_divisible(16 * width)
        layers: list[nn.Module] = [ConvBNAct(in_channels, cin, 3, stem_stride)]
        for kernel, expanded, out, se, stride in LAYERS:
            cout = make_divisible(out * width)
            layers.append(GhostBottleneck(cin, make_divisible(expanded * width), cout, kernel,
                                          stride, se))
            cin = cout
        last = make_divisible(960 * width)
        layers.append(ConvBNAct(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Conv2d(last, 1280, 1), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.features(x).mean((2, 3), keepdim=True)).flatten(1)
        return self.fc(self.dropout(x))
