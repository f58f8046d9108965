"""One name for anything buildable: a grammar network (`ArchSpec`) or a family outside the grammar
(`FamilyModel`), resolved from a reference name and built to a PyTorch model."""
from __future__ import annotations

from typing import Union

from torch import nn

from .blockstrings import encode_arch
from .builder import build_model
from .families import FAMILIES, FamilyModel, family_names
from .reference import reference_arch, reference_names
from .specs import ArchSpec

Network = Union[ArchSpec, FamilyModel]

#: Widths the grammar references were published at (MobileNetV2 paper Table 6; timm's
#: mnasnet_050..140 and semnasnet_050..140). Families keep theirs in `families.FAMILIES`.
PUBLISHED_WIDTHS: dict[str, tuple[float, ...]] = {
    "mobilenet_v2": (0.35, 0.5, 0.75, 1.0, 1.4),
    "mnasnet_a1": (0.5, 0.75, 1.0, 1.4),
    "mnasnet_b1": (0.5, 0.75, 1.0, 1.4),
    "efficientnet_b0": (1.0,),
}


def reference_network_names() -> list[str]:
    """Every reference name: grammar networks and the families outside the grammar."""
    return sorted(reference_names() + family_names())


def reference_network(name: str, width: float = 1.0, *, stem_stride: int = 2) -> Network:
    """A published network by name (e.g. `mobilenet_v2`, `shufflenet_v2`), optionally width-
    scaled: an `ArchSpec` where the block grammar says it, a `FamilyModel` otherwise."""
    if name in family_names():
        return FamilyModel(name, width, stem_stride)
    if name not in reference_names():
        raise ValueError(f"unknown reference architecture {name!r} (expected one of "
                         f"{', '.join(reference_network_names())})")
    return reference_arch(name, width, stem_stride=stem_stride)


def published_widths(name: str) -> tuple[float, ...]:
    """The widths a reference was published at (what `mnas baselines` times)."""
    if name in FAMILIES:
        return FAMILIES[name].widths
    if name not in PUBLISHED_WIDTHS:
        raise ValueError(f"unknown reference architecture {name!r} (expected one of "
                         f"{', '.join(reference_network_names())})")
    return PUBLISHED_WIDTHS[name]


def reference_label(name: str, width: float) -> str:
    """`name` or `name@width`, as `resolve_arch` reads it back."""
    return name if width == 1.0 else f"{name}@{width:g}"


def build_network(net: Network, num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    if isinstance(net, FamilyModel):
        return net.build(num_classes, in_channels)
    return build_model(net, num_classes=num_classes, in_channels=in_channels)


def network_strings(net: Network) -> list[str]:
    """How a network is written down: its block strings, or a family's reference name."""
    return [net.label] if isinstance(net, FamilyModel) else list(encode_arch(net))
