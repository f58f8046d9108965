"""The Once-for-All MobileNetV3 space (Cai et al., ICLR 2020), width 1.2, as OFA searches it.

Fixed skeleton: stem 3x3 conv stride 2 to 24 channels, a first 3x3 depthwise-separable layer
(24 -> 24, identity shortcut), then 5 stages with output widths 32, 48, 96, 136, 192 and
first-layer strides 2, 2, 2, 1, 2; squeeze-excite in stages 2, 4, 5 and h-swish in stages 3-5;
an identity shortcut on every layer but a stage's first; then a 1x1 conv to 1152, average pool,
a 1x1 conv to 1536 and the classifier. Searched: per stage depth {2, 3, 4}, per layer kernel
{3, 5, 7} and expand ratio {3, 4, 6}, and the input resolution {160, ..., 224}.

`OfaArch` is the spec (active layers only, so one network has one spec); its text form is
`res<R>` followed by the network's block strings (one per layer, the `hs` token marking
h-swish), which `to_arch_spec` builds with the common builder.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mnas.config.loader import check, load_section

from .blockstrings import decode_block, encode_block
from .space import Decision
from .specs import ArchSpec, BlockSpec

STAGE_WIDTHS = (32, 48, 96, 136, 192)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_SE = (False, True, False, True, True)
STAGE_HSWISH = (False, False, True, True, True)
STEM_WIDTH = 24
#: The 1x1 conv after the last stage (OFA's `Conv_1`) and the feature-mix conv after pooling
#: (`Conv_2`).
HEAD_WIDTH, FEATURE_MIX_WIDTH = 1152, 1536
#: OFA's squeeze-excite squeezes the expanded width by 4; our builder squeezes the layer's
#: *input* width by the ratio (the MnasNet rule), so the built SE is narrower (see README).
SE_RATIO = 0.25
_RES = re.compile(r"res([0-9]+)")


def first_block() -> BlockSpec:
    """The fixed first layer: 3x3 depthwise-separable, 24 -> 24, identity shortcut."""
    return BlockSpec("ds", 1, 3, 1, 1, STEM_WIDTH, STEM_WIDTH)


@dataclass(frozen=True)
class OfaArch:
    """One network: input resolution, per-stage depth, and kernel / expand ratio of each active
    layer in order (sum(depths) of each)."""

    resolution: int
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("depths", "kernels", "expands"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.depths) != len(STAGE_WIDTHS) or not all(d >= 1 for d in self.depths):
            raise ValueError(f"OfaArch.depths: expected {len(STAGE_WIDTHS)} depths >= 1, got "
                             f"{self.depths}")
        n = sum(self.depths)
        if len(self.kernels) != n or len(self.expands) != n:
            raise ValueError(f"OfaArch: {n} layers need {n} kernels and expand ratios, got "
                             f"{len(self.kernels)} and {len(self.expands)}")
        if not isinstance(self.resolution, int) or self.resolution < 32:
            raise ValueError(f"OfaArch.resolution: expected an integer >= 32, got "
                             f"{self.resolution!r}")

    def blocks(self) -> list[BlockSpec]:
        """Every layer as a one-layer block of the common grammar (after the fixed first)."""
        out, width, i = [first_block()], STEM_WIDTH, 0
        for s, depth in enumerate(self.depths):
            for j in range(depth):
                out.append(BlockSpec(
                    "ir", 1, self.kernels[i], STAGE_STRIDES[s] if j == 0 else 1,
                    self.expands[i], width, STAGE_WIDTHS[s],
                    se_ratio=SE_RATIO if STAGE_SE[s] else 0.0,
                    act="hswish" if STAGE_HSWISH[s] else "relu"))
                width, i = STAGE_WIDTHS[s], i + 1
        return out

    def to_arch_spec(self, dropout: float = 0.1) -> ArchSpec:
        """The network in the common grammar (stem 24 at stride 2, head 1152), for the builder."""
        return ArchSpec(tuple(self.blocks()), stem_filters=STEM_WIDTH, stem_stride=2,
                        head_filters=HEAD_WIDTH, dropout=dropout)

    def to_strings(self) -> list[str]:
        return [f"res{self.resolution}"] + [encode_block(b) for b in self.blocks()]

    @classmethod
    def from_strings(cls, strings: Sequence[str]) -> "OfaArch":
        """Parse `to_strings` output; ValueError unless the strings are exactly such a network."""
        if isinstance(strings, str) or not strings:
            raise ValueError(f"OFA architecture: expected ['res<R>', block strings...], got "
                             f"{strings!r}")
        match = _RES.fullmatch(str(strings[0]))
        if not match:
            raise ValueError(f"OFA architecture: first string {strings[0]!r} should be res<R>")
        blocks = [decode_block(s) for s in strings[1:]]
        depths, width, count = [], STEM_WIDTH, 0
        for block in blocks[1:]:
            if block.out_filters != width:  # a new stage begins
                if count:
                    depths.append(count)
                width, count = block.out_filters, 0
            count += 1
        depths.append(count)
        layers = blocks[1:]
        problem = (f"OFA architecture {list(strings)!r}: not a network of the OFA MobileNetV3 "
                   "skeleton (stem, widths, strides, SE, h-swish)")
        try:
            arch = cls(int(match.group(1)), tuple(depths) if layers else (),
                       tuple(b.kernel for b in layers), tuple(b.expansion for b in layers))
        except ValueError:
            raise ValueError(problem) from None
        if arch.to_strings() != list(strings):
            raise ValueError(problem)
        return arch


def _choices(name: str, value: Any, allowed: Sequence[int]) -> tuple[int, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"search_space.{name}: expected a non-empty list, got {value!r}")
    out = tuple(value)
    for v in out:
        if v not in allowed or isinstance(v, bool):
            raise ValueError(f"search_space.{name}: {v!r} is not one of {list(allowed)}")
    if len(set(out)) != len(out):
        raise ValueError(f"search_space.{name}: a choice is listed twice")
    return out


@dataclass(frozen=True)
class OfaMobileNetV3Space:
    """OFA's space; the choice lists may be narrowed (never widened: the tables and the
    accuracy predictor know only these)."""

    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = (160, 176, 192, 208, 224)
    num_classes: int = 1000

    def __post_init__(self) -> None:
        for name, allowed in (("kernels", (3, 5, 7)), ("expands", (3, 4, 6)),
                              ("depths", (2, 3, 4)),
                              ("resolutions", (160, 176, 192, 208, 224))):
            object.__setattr__(self, name, _choices(name, getattr(self, name), allowed))
        check(self.num_classes >= 1, "num_classes", "an integer >= 1", self.num_classes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "OfaMobileNetV3Space":
        """The `search_space` settings, checked by the config loader."""
        return load_section(cls, data, "search_space")

    def to_dict(self) -> dict[str, Any]:
        return {"kernels": list(self.kernels), "expands": list(self.expands),
                "depths": list(self.depths), "resolutions": list(self.resolutions),
                "num_classes": self.num_classes}

    @property
    def fingerprint(self) -> str:
        return "ofa_mobilenetv3:" + repr(sorted(self.to_dict().items()))

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def decisions(self) -> list[Decision]:
        """Per stage: depth, then kernel and expand ratio of each of its slots; then the
        resolution. Slots beyond a stage's depth are decided but unused."""
        out = []
        for s in range(len(STAGE_WIDTHS)):
            out.append(Decision(f"stage{s + 1}.depth", self.depths))
            for j in range(self.max_depth):
                out.append(Decision(f"stage{s + 1}.layer{j + 1}.kernel", self.kernels))
                out.append(Decision(f"stage{s + 1}.layer{j + 1}.expand", self.expands))
        out.append(Decision("resolution", self.resolutions))
        return out

    @property
    def size(self) -> int:
        """Distinct networks (unused slots do not count)."""
        per_layer = len(self.kernels) * len(self.expands)
        per_stage = sum(per_layer ** d for d in self.depths)
        return int(per_stage ** len(STAGE_WIDTHS)) * len(self.resolutions)

    def decode(self, actions: Sequence[int]) -> OfaArch:
        decisions = self.decisions
        if len(actions) != len(decisions):
            raise ValueError(f"expected {len(decisions)} actions, got {len(actions)}")
        for a, d in zip(actions, decisions):
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 0 <= a < d.size:
                raise ValueError(f"action {a!r} for {d.name} is not in 0..{d.size - 1}")
        step = 1 + 2 * self.max_depth
        depths, kernels, expands = [], [], []
        for s in range(len(STAGE_WIDTHS)):
            chunk = actions[s * step:(s + 1) * step]
            depth = self.depths[int(chunk[0])]
            depths.append(depth)
            for j in range(depth):
                kernels.append(self.kernels[int(chunk[1 + 2 * j])])
                expands.append(self.expands[int(chunk[2 + 2 * j])])
        return OfaArch(self.resolutions[int(actions[-1])], tuple(depths), tuple(kernels),
                       tuple(expands))

    def encode(self, arch: OfaArch) -> list[int]:
        """Actions of `arch` (unused slots get the first choice); ValueError naming a value the
        space does not offer."""
        if not isinstance(arch, OfaArch):
            raise ValueError(f"expected an OFA architecture, got {type(arch).__name__}")

        def index(name: str, choices: tuple[int, ...], value: int) -> int:
            if value not in choices:
                raise ValueError(f"{name} {value} is not a choice of this space ({list(choices)})")
            return choices.index(value)

        actions, i = [], 0
        for depth in arch.depths:
            actions.append(index("depth", self.depths, depth))
            for j in range(self.max_depth):
                if j < depth:
                    actions += [index("kernel", self.kernels, arch.kernels[i]),
                                index("expand ratio", self.expands, arch.expands[i])]
                    i += 1
                else:
                    actions += [0, 0]
        actions.append(index("resolution", self.resolutions, arch.resolution))
        return actions

    def covering_archs(self) -> list[OfaArch]:
        """Networks that together hold every distinct layer the space can produce (a layer's
        shape depends on its stage, position, kernel, expand ratio and the resolution, not on
        the depth): what a latency table must cover, checked before a search starts."""
        depth = max(self.depths)
        n = depth * len(STAGE_WIDTHS)
        return [OfaArch(r, (depth,) * len(STAGE_WIDTHS), (k,) * n, (e,) * n)
                for r in self.resolutions for k in self.kernels for e in self.expands]

    def to_strings(self, arch: OfaArch) -> list[str]:
        return arch.to_strings()

    def from_strings(self, strings: Sequence[str]) -> OfaArch:
        return OfaArch.from_strings(strings)

    def sample_actions(self, rng: np.random.Generator) -> list[int]:
        return [int(rng.integers(d.size)) for d in self.decisions]

    def sample(self, rng: np.random.Generator) -> OfaArch:
        return self.decode(self.sample_actions(rng))


def build_ofa_model(arch: OfaArch, num_classes: int = 1000, in_channels: int = 3) -> Any:
    """The PyTorch model: the common builder's stem and layers, with OFA's head (1x1 conv to
    1152 + h-swish, pool, 1x1 conv to 1536 + h-swish, classifier)."""
    from torch import nn

    from .builder import ConvBNAct, build_model

    class OfaHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = ConvBNAct(STAGE_WIDTHS[-1], HEAD_WIDTH, 1, act="hswish")
            self.mix = nn.Sequential(nn.Conv2d(HEAD_WIDTH, FEATURE_MIX_WIDTH, 1, bias=False),
                                     nn.Hardswish())
            self.fc = nn.Linear(FEATURE_MIX_WIDTH, num_classes)

        def forward(self, x: Any) -> Any:
            x = self.conv(x).mean((2, 3), keepdim=True)
            return self.fc(self.mix(x).flatten(1))

    model = build_model(arch.to_arch_spec(), num_classes=num_classes, in_channels=in_channels)
    model.head = OfaHead()
    return model


__all__ = ["OfaArch", "OfaMobileNetV3Space", "build_ofa_model", "first_block", "STAGE_WIDTHS",
           "STAGE_STRIDES", "STAGE_SE", "STAGE_HSWISH", "HEAD_WIDTH", "FEATURE_MIX_WIDTH"]
