"""EfficientNet's compound scaling (Tan & Le 2019, section 3.3) of a block-grammar network.

One coefficient phi scales depth by alpha**phi, width by beta**phi and input resolution by
gamma**phi, with alpha * beta**2 * gamma**2 ~= 2 so that each step of phi about doubles the
multiply-adds. Rounding follows the official efficientnet_model.py: widths (stem, every block,
head) by `round_filters` (a multiple of 8, bumped up when rounding lost more than 10%), repeats by
ceil(depth * repeats). The paper fixed phi = 1 and grid-searched alpha, beta, gamma on B0
(alpha 1.2, beta 1.1, gamma 1.15): `constrained_grid` gives such a grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .specs import ArchSpec, round_filters

#: The paper's coefficients for EfficientNet-B0.
EFFICIENTNET_ALPHA, EFFICIENTNET_BETA, EFFICIENTNET_GAMMA = 1.2, 1.1, 1.15


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Compound:
    """Depth, width and resolution multipliers from phi and (alpha, beta, gamma)."""

    phi: float
    alpha: float = EFFICIENTNET_ALPHA
    beta: float = EFFICIENTNET_BETA
    gamma: float = EFFICIENTNET_GAMMA

    def __post_init__(self) -> None:
        if isinstance(self.phi, bool) or not isinstance(self.phi, (int, float)) \
                or not math.isfinite(self.phi):
            raise ValueError(f"phi must be a finite number, got {self.phi!r}")
        for name in ("alpha", "beta", "gamma"):
            value = _positive(name, getattr(self, name))
            if value < 1:
                raise ValueError(f"{name} must be >= 1 (it scales up), got {value:g}")

    @property
    def depth(self) -> float:
        return float(self.alpha ** self.phi)

    @property
    def width(self) -> float:
        return float(self.beta ** self.phi)

    @property
    def resolution(self) -> float:
        return float(self.gamma ** self.phi)

    @property
    def flops_factor(self) -> float:
        """alpha * beta**2 * gamma**2: how much one step of phi multiplies the multiply-adds."""
        return self.alpha * self.beta ** 2 * self.gamma ** 2


def round_repeats(repeats: int, depth: float) -> int:
    """The official rule: ceil(depth * repeats)."""
    return int(math.ceil(_positive("depth", depth) * repeats))


def scale_depth_width(arch: ArchSpec, depth: float, width: float) -> ArchSpec:
    """Every block's repeats by `round_repeats`, every width (stem, blocks, head) by
    `round_filters`. depth = width = 1 returns `arch` itself."""
    _positive("depth", depth)
    _positive("width", width)
    if depth == 1.0 and width == 1.0:
        return arch
    blocks = tuple(replace(b, repeats=round_repeats(b.repeats, depth),
                           in_filters=round_filters(b.in_filters, width),
                           out_filters=round_filters(b.out_filters, width))
                   for b in arch.blocks)
    return replace(arch, blocks=blocks, stem_filters=round_filters(arch.stem_filters, width),
                   head_filters=round_filters(arch.head_filters, width))


def scale_resolution(input_size: int, resolution: float) -> int:
    """The scaled input side, rounded to the nearest pixel."""
    return max(1, int(round(input_size * _positive("resolution", resolution))))


def compound_scale(arch: ArchSpec, input_size: int, compound: Compound) -> tuple[ArchSpec, int]:
    """`arch` and its input size scaled by one compound coefficient."""
    return (scale_depth_width(arch, compound.depth, compound.width),
            scale_resolution(input_size, compound.resolution))


def constrained_grid(step: float = 0.05, target: float = 2.0, tolerance: float = 0.1,
                     upper: float = 1.4) -> list[Compound]:
    """(alpha, beta, gamma) in [1, upper] on a `step` grid with |alpha*beta^2*gamma^2 - target|
    <= tolerance, at phi = 1 (the paper's step 1 of its B0 search)."""
    _positive("step", step)
    n = int(round((_positive("upper", upper) - 1.0) / step))
    values = [round(1.0 + i * step, 6) for i in range(n + 1)]
    return [Compound(1.0, a, b, g) for a in values for b in values for g in values
            if abs(a * b * b * g * g - target) <= tolerance]
