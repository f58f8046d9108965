"""Reference families the MnasNet block grammar cannot express, each a small module of its own.

`FamilyModel` names one published network (family + width) the way `ArchSpec` names a grammar
network; `search_spaces.network` builds either. Families in the grammar (MobileNetV2, MnasNet,
EfficientNet-B0) live in `search_spaces.reference` as block strings instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

from torch import nn

from .ghostnet import GhostNet
from .mobilenet_v1 import MobileNetV1
from .shufflenet_v2 import CHANNELS as SHUFFLENET_WIDTHS
from .shufflenet_v2 import ShuffleNetV2
from .squeezenet import SqueezeNet


@dataclass(frozen=True)
class Family:
    """One family: its builder and the widths its paper published (the ones `baselines` times)."""

    cls: Callable[..., nn.Module]
    widths: tuple[float, ...]
    any_width: bool  # whether widths between the published ones are defined
    paper: str


FAMILIES: dict[str, Family] = {
    "mobilenet_v1": Family(MobileNetV1, (0.25, 0.5, 0.75, 1.0), True,
                           "Howard et al. 2017, arXiv 1704.04861"),
    "shufflenet_v2": Family(ShuffleNetV2, tuple(SHUFFLENET_WIDTHS), False,
                            "Ma et al. 2018, arXiv 1807.11164"),
    "ghostnet": Family(GhostNet, (1.0,), True, "Han et al. 2020, arXiv 1911.11907"),
    "squeezenet1_1": Family(SqueezeNet, (1.0,), False, "Iandola et al. 2016, arXiv 1602.07360"),
}


def family_names() -> list[str]:
    return sorted(FAMILIES)


@dataclass(frozen=True)
class FamilyModel:
    """A published network outside the block grammar: family name, width, stem stride (1 keeps
    32x32 inputs from shrinking to nothing, as `stem_stride` does for grammar networks)."""

    family: str
    width: float = 1.0
    stem_stride: int = 2

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r} (expected one of "
                             f"{', '.join(family_names())})")
        fam = FAMILIES[self.family]
        if (isinstance(self.width, bool) or not isinstance(self.width, (int, float))
                or not math.isfinite(self.width) or self.width <= 0):
            raise ValueError(f"{self.family}: width must be a finite number > 0, got "
                             f"{self.width!r}")
        if not fam.any_width and float(self.width) not in fam.widths:
            raise ValueError(f"{self.family}: width must be one of "
                             f"{', '.join(f'{w:g}' for w in fam.widths)}, got {self.width:g}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride!r}")
        object.__setattr__(self, "width", float(self.width))

    @property
    def label(self) -> str:
        """The name `resolve_arch` reads back (`shufflenet_v2@0.5`)."""
        from search_spaces.network import reference_label
        return reference_label(self.family, self.width)

    def build(self, num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes}, "
                             f"{in_channels}")
        return FAMILIES[self.family].cls(self.width, num_classes, in_channels, self.stem_stride)

    def with_(self, **changes: Any) -> "FamilyModel":
        return replace(self, **changes)


__all__ = ["FAMILIES", "Family", "FamilyModel", "family_names"]
