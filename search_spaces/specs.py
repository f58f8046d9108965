"""Frozen architecture specs: the single currency between space, controllers, builder and latency.

A `BlockSpec` is one MnasNet block: `repeats` identical layers, the first taking the block's stride
and in->out widths, the others running out->out at stride 1 (the official model code's rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterator

#: Layer operations. `ir` is MobileNetV2's inverted residual (MBConv), `ds` the depthwise-separable
#: conv (MBConv with expansion 1), `conv` a regular k x k convolution.
OPS = ("conv", "ds", "ir")
#: Skip operations. `identity` adds the input where stride is 1 and widths match; `pool` adds a
#: pooled, projected shortcut wherever the shape changes (identity otherwise); `none` adds nothing.
SKIPS = ("identity", "pool", "none")
#: Activations a layer (and the stem/head) can use: MnasNet's ReLU and EfficientNet's swish
#: (x * sigmoid(x), PyTorch's SiLU). The builder maps each name to modules; the block-string codec
#: writes a non-default one as a flag token of the same name (`_swish`).
#: `hswish` (h-swish, MobileNetV3 and the OFA space's later stages) is written `_hs`; `relu6`
#: (min(max(x, 0), 6), the published MobileNetV2's, timm's and torchvision's) `_relu6`.
ACTIVATIONS = ("relu", "swish", "hswish", "relu6")


def out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded layer of `stride`: strided convs round up. The one
    copy of this rule (describe tables, latency keys and features, MACs, layer resolutions)."""
    return -(-size // stride)


@dataclass(frozen=True)
class BlockSpec:
    """One block: op, repeats, kernel, stride, expansion, widths, SE ratio and skip op."""

    op: str
    repeats: int
    kernel: int
    stride: int
    expansion: int
    in_filters: int
    out_filters: int
    se_ratio: float = 0.0
    skip: str = "identity"
    act: str = "relu"

    def __post_init__(self) -> None:
        problems = _block_problems(self)
        if problems:
            raise ValueError(f"invalid block {self!r}: {problems[0]}")
        # One canonical type, so equal blocks compare, hash and encode identically.
        object.__setattr__(self, "se_ratio", float(self.se_ratio))

    def layers(self) -> Iterator["LayerSpec"]:
        """The block's layers in order (first with the stride and width change)."""
        for j in range(self.repeats):
            first = j == 0
            yield LayerSpec(
                op=self.op,
                kernel=self.kernel,
                stride=self.stride if first else 1,
                expansion=self.expansion,
                in_filters=self.in_filters if first else self.out_filters,
                out_filters=self.out_filters,
                se_ratio=self.se_ratio,
                skip=self.skip,
                act=self.act,
            )

    def with_(self, **changes: Any) -> "BlockSpec":
        return replace(self, **changes)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a block: everything that determines its cost except the input resolution."""

    op: str
    kernel: int
    stride: int
    expansion: int
    in_filters: int
    out_filters: int
    se_ratio: float
    skip: str
    act: str = "relu"

    @property
    def has_residual(self) -> bool:
        """Whether a shortcut is added to the layer's output."""
        if self.skip == "none":
            return False
        if self.skip == "pool":
            return True
        return self.stride == 1 and self.in_filters == self.out_filters

    @property
    def se_filters(self) -> int:
        """SE squeeze width: from the layer's *input* filters, as the official code does."""
        return max(1, int(self.in_filters * self.se_ratio)) if self.se_ratio > 0 else 0

    @property
    def mid_filters(self) -> int:
        return self.in_filters * self.expansion


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _block_problems(b: BlockSpec) -> list[str]:
    out: list[str] = []
    if b.op not in OPS:
        out.append(f"op {b.op!r} is not one of {OPS}")
    if b.skip not in SKIPS:
        out.append(f"skip {b.skip!r} is not one of {SKIPS}")
    if b.act not in ACTIVATIONS:
        out.append(f"act {b.act!r} is not one of {ACTIVATIONS}")
    for name in ("repeats", "kernel", "stride", "expansion", "in_filters", "out_filters"):
        value = getattr(b, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            out.append(f"{name} must be a positive integer, got {value!r}")
    if isinstance(b.kernel, int) and b.kernel >= 1 and b.kernel % 2 == 0:
        out.append(f"kernel must be odd, got {b.kernel}")
    if b.stride not in (1, 2) or isinstance(b.stride, bool):
        out.append(f"stride must be 1 or 2 (only the first layer of a block strides), "
                   f"got {b.stride!r}")
    if not _is_real(b.se_ratio) or not 0.0 <= b.se_ratio <= 1.0:
        out.append(f"se_ratio must be in [0, 1], got {b.se_ratio!r}")
    if b.op in ("ds", "conv") and b.expansion != 1:
        out.append(f"op {b.op!r} needs expansion 1, got {b.expansion}")
    if b.op == "ir" and isinstance(b.expansion, int) and b.expansion < 2:
        out.append("op 'ir' needs expansion >= 2 (expansion 1 is 'ds')")
    return out


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem conv, the blocks, then a 1x1 head conv, pooling, dropout and FC.
    `activation` is the stem's and head's (each block carries its own)."""

    blocks: tuple[BlockSpec, ...]
    stem_filters: int = 32
    stem_stride: int = 2
    head_filters: int = 1280
    dropout: float = 0.2
    activation: str = "relu"

    def __post_init__(self) -> None:
        if not isinstance(self.blocks, (list, tuple)):
            raise ValueError(f"blocks must be a sequence of BlockSpec, got {self.blocks!r}")
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            raise ValueError("an architecture needs at least one block")
        for idx, block in enumerate(self.blocks):
            if not isinstance(block, BlockSpec):
                raise ValueError(f"block {idx + 1} is not a BlockSpec: {block!r}")
        for name in ("stem_filters", "stem_stride", "head_filters"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not _is_real(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {ACTIVATIONS}")
        width = self.stem_filters
        for idx, block in enumerate(self.blocks):
            if block.in_filters != width:
                raise ValueError(
                    f"block {idx + 1} takes {block.in_filters} input filters but the previous "
                    f"layer gives {width}"
                )
            width = block.out_filters

    def layers(self) -> Iterator[LayerSpec]:
        for block in self.blocks:
            yield from block.layers()

    @property
    def total_stride(self) -> int:
        s = self.stem_stride
        for block in self.blocks:
            s *= block.stride
        return s

    def with_(self, **changes: Any) -> "ArchSpec":
        return replace(self, **changes)


def round_filters(filters: float, width: float = 1.0, divisor: int = 8) -> int:
    """Scale a width and round it as the official code does: to a multiple of `divisor`, then up
    by one `divisor` if rounding lost more than 10%."""
    if not math.isfinite(filters * width) or width <= 0 or divisor < 1:
        raise ValueError(f"width must be finite and > 0 and divisor >= 1, got {width}, {divisor}")
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


__all__ = ["round_filters", "ACTIVATIONS", "OPS", "SKIPS", "BlockSpec", "LayerSpec", "ArchSpec"]
