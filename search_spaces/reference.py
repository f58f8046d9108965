"""Published reference architectures and the official width-multiplier rounding."""
from __future__ import annotations

import math
from dataclasses import replace

from .blockstrings import decode_arch
from .specs import ArchSpec, round_filters

#: Block strings exactly as published (official mnasnet_models.py; MobileNetV2 as 7 blocks with
#: its published ReLU6, as timm and torchvision build it).
REFERENCE_STRINGS: dict[str, tuple[str, ...]] = {
    "mnasnet_a1": (
        "r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24", "r3_k5_s22_e3_i24_o40_se0.25",
        "r4_k3_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o112_se0.25", "r3_k5_s22_e6_i112_o160_se0.25",
        "r1_k3_s11_e6_i160_o320",
    ),
    "mnasnet_b1": (
        "r1_k3_s11_e1_i32_o16_noskip", "r3_k3_s22_e3_i16_o24", "r3_k5_s22_e3_i24_o40",
        "r3_k5_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o96", "r4_k5_s22_e6_i96_o192",
        "r1_k3_s11_e6_i192_o320_noskip",
    ),
    "mobilenet_v2": (
        "r1_k3_s11_e1_i32_o16_relu6", "r2_k3_s22_e6_i16_o24_relu6", "r3_k3_s22_e6_i24_o32_relu6",
        "r4_k3_s22_e6_i32_o64_relu6", "r3_k3_s11_e6_i64_o96_relu6",
        "r3_k3_s22_e6_i96_o160_relu6", "r1_k3_s11_e6_i160_o320_relu6",
    ),
    # EfficientNet-B0 (Tan & Le 2019, Table 1; official efficientnet_builder.py block strings),
    # MBConv with SE 0.25 and swish throughout (the stem and head follow the blocks).
    "efficientnet_b0": (
        "r1_k3_s11_e1_i32_o16_se0.25_swish", "r2_k3_s22_e6_i16_o24_se0.25_swish",
        "r2_k5_s22_e6_i24_o40_se0.25_swish", "r3_k3_s22_e6_i40_o80_se0.25_swish",
        "r3_k5_s11_e6_i80_o112_se0.25_swish", "r4_k5_s22_e6_i112_o192_se0.25_swish",
        "r1_k3_s11_e6_i192_o320_se0.25_swish",
    ),
}


def scale_arch(arch: ArchSpec, width: float, *, scale_head: bool = True) -> ArchSpec:
    """Apply a width multiplier to the stem and every block. With `scale_head` the head becomes
    round(max(1, width) x head), MobileNetV2's rule (it keeps 1280 below width 1); without, the
    head stays fixed, as in the official MnasNet code and torchvision's MNASNet."""
    if width == 1.0:
        return arch
    blocks = tuple(
        replace(b, in_filters=round_filters(b.in_filters, width),
                out_filters=round_filters(b.out_filters, width))
        for b in arch.blocks
    )
    head = round_filters(arch.head_filters, max(1.0, width)) if scale_head else arch.head_filters
    return replace(arch, blocks=blocks, stem_filters=round_filters(arch.stem_filters, width),
                   head_filters=head)


#: References whose head width follows the multiplier above 1 (MobileNetV2 only).
_SCALED_HEAD = frozenset({"mobilenet_v2"})


def reference_arch(name: str, width: float = 1.0, *, stem_stride: int = 2) -> ArchSpec:
    """A published architecture by name, optionally width-scaled (e.g. mobilenet_v2, 0.35)."""
    if name not in REFERENCE_STRINGS:
        raise ValueError(f"unknown reference architecture {name!r} (expected one of "
                         f"{', '.join(sorted(REFERENCE_STRINGS))})")
    if (isinstance(width, bool) or not isinstance(width, (int, float))
            or not math.isfinite(width) or width <= 0):
        raise ValueError(f"width multiplier must be a finite number > 0, got {width!r}")
    base = decode_arch(list(REFERENCE_STRINGS[name]), stem_stride=stem_stride)
    return scale_arch(base, float(width), scale_head=name in _SCALED_HEAD)


def reference_names() -> list[str]:
    return sorted(REFERENCE_STRINGS)
