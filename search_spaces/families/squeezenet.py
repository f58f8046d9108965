"""SqueezeNet 1.1 (Iandola et al. 2016, arXiv 1602.07360; v1.1 from the authors' repository):
fire modules (1x1 squeeze -> ReLU -> concat(1x1 expand, 3x3 expand) -> ReLU), biased convs and no
BatchNorm, max pooling after the stem and fire modules 2 and 4, and a 1x1 conv classifier averaged
over space. Not expressible in the MnasNet grammar (two parallel expand branches, no BN)."""
from __future__ import annotations

import torch
from torch import nn

#: (squeeze, expand 1x1, expand 3x3) of the eight fire modules; a max pool follows #2 and #4.
FIRES = ((16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128), (48, 192, 192),
         (48, 192, 192), (64, 256, 256), (64, 256, 256))
POOL_AFTER = (1, 3)


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand1: int, expand3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1 = nn.Conv2d(squeeze, expand1, 1)
        self.expand3 = nn.Conv2d(squeeze, expand3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1(s)), torch.relu(self.expand3(s))], 1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2, ceil_mode=True)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1. `stem_stride` 1 keeps small inputs (32x32) from vanishing."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 stem_stride: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        if width != 1.0:
            raise ValueError(f"squeezenet1_1 has no width variants (got width {width:g})")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 64, 3, stem_stride),
                                   nn.ReLU(inplace=True),
                                   _pool()]
        cin = 64
        for idx, (squeeze, e1, e3) in enumerate(FIRES):
            layers.append(Fire(cin, squeeze, e1, e3))
            cin = e1 + e3
            if idx in POOL_AFTER:
                layers.append(_pool())
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.classifier(self.dropout(self.features(x))))
        return x.mean((2, 3))
