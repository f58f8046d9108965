"""MobileNetV1 (Howard et al. 2017, arXiv 1704.04861, Table 1): a 3x3 stem, then 13 depthwise-
separable layers (3x3 depthwise -> BN -> ReLU, 1x1 pointwise -> BN -> ReLU), global pooling, FC.

Not expressible in the MnasNet grammar: its pointwise conv is followed by ReLU (MBConv's projection
is linear) and it has no 1x1 head conv. Widths follow TF-slim's `depth_multiplier`:
max(8, int(channels * width)), so 0.25/0.5/0.75/1.0 give the paper's networks.
"""
from __future__ import annotations

import torch
from torch import nn

from search_spaces.builder import ConvBNAct

#: (output channels, stride) of the 13 depthwise-separable layers (paper Table 1).
LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
          (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _depth(channels: int, width: float) -> int:
    return max(8, int(channels * width))


class MobileNetV1(nn.Module):
    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 stem_stride: int = 2, dropout: float = 0.001) -> None:
        super().__init__()
        cin = _depth(32, width)
        layers: list[nn.Module] = [ConvBNAct(in_channels, cin, 3, stem_stride)]
        for channels, stride in LAYERS:
            cout = _depth(channels, width)
            layers += [ConvBNAct(cin, cin, 3, stride, groups=cin), ConvBNAct(cin, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)  # TF-slim's keep_prob 0.999
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x).mean((2, 3))))
