"""ShuffleNetV2 (Ma et al. 2018, arXiv 1807.11164, Table 5): a 3x3 stem and max pool, three stages
of shuffle units, a 1x1 conv and FC. A stride-1 unit splits the channels in two, passes one half
through and runs 1x1 -> 3x3 depthwise -> 1x1 on the other; a stride-2 unit runs two branches on the
whole input; both concatenate and shuffle the channels (2 groups). Not expressible in the MnasNet
grammar (channel split, concatenation and shuffle)."""
from __future__ import annotations

import torch
from torch import nn

from search_spaces.builder import ConvBNAct

REPEATS = (4, 8, 4)
#: Output channels of stem, the three stages and the last 1x1 conv, per width (paper Table 5).
CHANNELS: dict[float, tuple[int, ...]] = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        half = cout // 2
        self.stride = stride
        self.branch1 = nn.Sequential(ConvBNAct(cin, cin, 3, stride, groups=cin, act=None),
                                     ConvBNAct(cin, half, 1)) if stride > 1 else nn.Identity()
        self.branch2 = nn.Sequential(ConvBNAct(cin if stride > 1 else half, half, 1),
                                     ConvBNAct(half, half, 3, stride, groups=half, act=None),
                                     ConvBNAct(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            keep, x = x.chunk(2, dim=1)
            out = torch.cat([keep, self.branch2(x)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 at width 0.5, 1.0, 1.5 or 2.0. `stem_stride` 1 suits small inputs."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 stem_stride: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if width not in CHANNELS:
            raise ValueError(f"shufflenet_v2 width must be one of "
                             f"{', '.join(f'{w:g}' for w in CHANNELS)}, got {width:g}")
        channels = CHANNELS[width]
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels[0], 3, stem_stride),
                                   nn.MaxPool2d(3, 2, 1)]
        cin = channels[0]
        for repeats, cout in zip(REPEATS, channels[1:4]):
            layers += [ShuffleUnit(cin if i == 0 else cout, cout, 2 if i == 0 else 1)
                       for i in range(repeats)]
            cin = cout
        layers.append(ConvBNAct(cin, channels[4], 1))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels[4], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x).mean((2, 3))))
