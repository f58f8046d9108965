"""Build a PyTorch model from an `ArchSpec`, plus exact parameter and multiply-add counters.

Layer rules follow the official MnasNet code: expand 1x1 only when e != 1, depthwise k x k, SE
squeezing to max(1, int(layer_input_filters * se_ratio)), linear 1x1 projection, residual per the
skip op. BatchNorm uses TF's momentum 0.99 (PyTorch 0.01) and epsilon 1e-3 (timm and torchvision
use PyTorch's 1e-5: set `eps` on every BatchNorm2d when copying weights across). Activations are
per layer (`BlockSpec.act`), the stem's and head's the architecture's (`ArchSpec.activation`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .specs import ArchSpec, LayerSpec

BN_MOMENTUM = 0.01
BN_EPS = 1e-3


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=BN_EPS)


#: The one table of activations (names as in `specs.ACTIVATIONS`): name -> module factory.
#: SE uses the layer's activation inside and a sigmoid gate (MnasNet: ReLU, EfficientNet: swish).
ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "hswish": lambda: nn.Hardswish(inplace=True),
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATION_MODULES:
        raise ValueError(f"unknown activation {name!r} (expected one of "
                         f"{', '.join(ACTIVATION_MODULES)})")
    return ACTIVATION_MODULES[name]()


class ConvBNAct(nn.Sequential):
    """k x k conv (no bias) -> BN -> activation (`act`, None for a linear layer)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: str | None = "relu") -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            _bn(cout),
        ]
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Global average -> 1x1 (bias) -> activation -> 1x1 (bias) -> sigmoid gate."""

    def __init__(self, channels: int, squeeze: int, act: str = "relu") -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.act = activation(act)
        self.expand = nn.Conv2d(squeeze, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.expand(self.act(self.reduce(s)))
        return x * torch.sigmoid(s)


class PoolShortcut(nn.Module):
    """The pooling skip: average-pool to the output resolution, 1x1 conv + BN to the output width
    when it differs; identity when neither changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.proj = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), _bn(cout))
                     if cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x))


class Layer(nn.Module):
    """Base for one searched layer: subclasses build `self.body`; the shortcut comes from the
    skip op."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.spec = spec
        self.shortcut: nn.Module | None = None
        if spec.has_residual:
            if spec.skip == "pool" and (spec.stride > 1 or spec.in_filters != spec.out_filters):
                self.shortcut = PoolShortcut(spec.in_filters, spec.out_filters, spec.stride)
            else:
                self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + self.shortcut(x) if self.shortcut is not None else out


class InvertedResidual(Layer):
    """MBConv (`ir`) and depthwise-separable conv (`ds`, the e == 1 case: no expand conv)."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__(spec)
        mid = spec.mid_filters
        layers: list[nn.Module] = []
        if spec.expansion != 1:
            layers.append(ConvBNAct(spec.in_filters, mid, 1, act=spec.act))
        layers.append(ConvBNAct(mid, mid, spec.kernel, spec.stride, groups=mid, act=spec.act))
        if spec.se_ratio > 0:
            layers.append(SqueezeExcite(mid, spec.se_filters, spec.act))
        layers.append(ConvBNAct(mid, spec.out_filters, 1, act=None))
        self.body = nn.Sequential(*layers)


class RegularConv(Layer):
    """A regular k x k convolution (`conv`): conv -> BN -> activation, then optional SE on its
    output."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__(spec)
        layers: list[nn.Module] = [ConvBNAct(spec.in_filters, spec.out_filters, spec.kernel,
                                             spec.stride, act=spec.act)]
        if spec.se_ratio > 0:
            layers.append(SqueezeExcite(spec.out_filters, spec.se_filters, spec.act))
        self.body = nn.Sequential(*layers)


#: The one table of layer types: op name (as in `BlockSpec.op` and the codec) -> module class.
LAYER_TYPES: dict[str, Callable[[LayerSpec], Layer]] = {
    "ir": InvertedResidual,
    "ds": InvertedResidual,
    "conv": RegularConv,
}


def build_layer(spec: LayerSpec) -> Layer:
    return LAYER_TYPES[spec.op](spec)


class Head(nn.Module):
    """1x1 conv -> BN -> activation -> global average pool -> dropout -> FC."""

    def __init__(self, cin: int, head: int, num_classes: int, dropout: float,
                 act: str = "relu") -> None:
        super().__init__()
        self.conv = ConvBNAct(cin, head, 1, act=act)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).mean((2, 3))
        return self.fc(self.dropout(x))


class MnasNet(nn.Module):
    """Stem, the arch's layers in order, head."""

    def __init__(self, arch: ArchSpec, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes}, "
                             f"{in_channels}")
        self.arch = arch
        self.stem = ConvBNAct(in_channels, arch.stem_filters, 3, arch.stem_stride,
                              act=arch.activation)
        self.layers = nn.Sequential(*(build_layer(s) for s in arch.layers()))
        self.head = Head(arch.blocks[-1].out_filters, arch.head_filters, num_classes, arch.dropout,
                         arch.activation)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def build_model(arch: ArchSpec, num_classes: int = 1000, in_channels: int = 3) -> MnasNet:
    """The PyTorch model for `arch`."""
    return MnasNet(arch, num_classes=num_classes, in_channels=in_channels)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int = 224, in_channels: int = 3) -> int:
    """Exact multiply-adds of conv and linear layers for one image (batch 1), by forward hooks."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total
