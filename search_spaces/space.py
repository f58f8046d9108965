"""The MnasNet factorized hierarchical search space (paper section 4.1).

Seven blocks over a base network (MobileNetV2 by default); per block one layer design is searched
and repeated: ConvOp x kernel x SE ratio x skip op x width multiplier x layer-count delta. A
controller sees only `decisions` (ordered categorical choices) and emits integer actions; the
space turns actions into an `ArchSpec` and back.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mnas.config.loader import load_section

from .blockstrings import decode_arch, encode_arch
from .specs import ArchSpec, BlockSpec, LayerSpec, out_size, round_filters


@dataclass(frozen=True)
class BaseBlock:
    """One block of the base network: the reference the per-block choices scale."""

    kernel: int
    stride: int
    expansion: int
    filters: int
    layers: int


#: MobileNetV2 1.0 (the paper's base network), 224x224.
MOBILENET_V2_BASE: tuple[BaseBlock, ...] = (
    BaseBlock(3, 1, 1, 16, 1), BaseBlock(3, 2, 6, 24, 2), BaseBlock(3, 2, 6, 32, 3),
    BaseBlock(3, 2, 6, 64, 4), BaseBlock(3, 1, 6, 96, 3), BaseBlock(3, 2, 6, 160, 3),
    BaseBlock(3, 1, 6, 320, 1),
)

_OP = re.compile(r"conv|dconv|mbconv([0-9]+)")
_DECISION_FIELDS = ("op", "kernel", "se", "skip", "filters", "layers")


def parse_op(name: str) -> tuple[str, int]:
    """Space op name -> (BlockSpec.op, expansion): conv, dconv, mbconv<E>."""
    match = _OP.fullmatch(str(name))
    if not match:
        raise ValueError(
            f"search space op {name!r}: expected conv, dconv or mbconv<E> (e.g. mbconv6)")
    if name == "conv":
        return "conv", 1
    if name == "dconv":
        return "ds", 1
    expansion = int(match.group(1))
    if expansion < 2:
        raise ValueError(f"search space op {name!r}: mbconv expansion must be >= 2 (use dconv)")
    return "ir", expansion


@dataclass(frozen=True)
class Decision:
    """One categorical decision a controller makes: a name and its choices (shown to humans)."""

    name: str
    choices: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class MnasNetSpace:
    """The factorized hierarchical space. Construct from YAML data with `from_dict`."""

    base: tuple[BaseBlock, ...] = MOBILENET_V2_BASE
    ops: tuple[str, ...] = ("conv", "dconv", "mbconv3", "mbconv6")
    kernels: tuple[int, ...] = (3, 5)
    se_ratios: tuple[float, ...] = (0.0, 0.25)
    skips: tuple[str, ...] = ("pool", "identity", "none")
    filter_multipliers: tuple[float, ...] = (0.75, 1.0, 1.25)
    layer_deltas: tuple[int, ...] = (-1, 0, 1)
    stem_filters: int = 32
    stem_stride: int = 2
    head_filters: int = 1280
    dropout: float = 0.2
    input_size: int = 224
    num_classes: int = 1000
    width_divisor: int = 8

    def __post_init__(self) -> None:
        for name in _CHOICE_FIELDS:
            object.__setattr__(self, name, _choices(name, getattr(self, name)))
        for i, b in enumerate(self.base):
            if not isinstance(b, BaseBlock):
                raise ValueError(f"search_space.base[{i}]: expected a BaseBlock, got {b!r} (build "
                                 "a space from plain data with `MnasNetSpace.from_dict`)")
            if b.stride not in (1, 2):
                raise ValueError(f"search_space.base[{i}].stride: must be 1 or 2, got {b.stride}")
        for op in self.ops:
            try:
                parse_op(op)
            except ValueError as exc:
                raise ValueError(f"search_space.ops: {exc}") from None
        _check_each("kernels", self.kernels, lambda k: _is_int(k) and k >= 1 and k % 2 == 1,
                    "an odd positive integer")
        _check_each("se_ratios", self.se_ratios, lambda r: _is_real(r) and 0 <= r <= 1,
                    "a number in [0, 1]")
        _check_each("skips", self.skips, lambda s: s in ("pool", "identity", "none"),
                    "one of pool, identity, none")
        _check_each("filter_multipliers", self.filter_multipliers,
                    lambda m: _is_real(m) and 0 < m < math.inf, "a finite number > 0")
        _check_each("layer_deltas", self.layer_deltas, _is_int, "an integer")
        # a block taken to 0 layers keeps 1 (the paper's -1 on a one-layer block); a delta that
        # takes even the deepest block below 0 is a typo, not a choice: refused, not clamped
        deepest = max((b.layers for b in self.base), default=1)
        for delta in self.layer_deltas:
            if deepest + delta < 0:
                raise ValueError(f"search_space.layer_deltas: {delta} is below -{deepest} (the "
                                 f"deepest base block has {deepest} layers; a block taken to "
                                 "0 layers keeps 1)")
        for name in ("stem_filters", "stem_stride", "head_filters", "input_size", "num_classes",
                     "width_divisor"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"search_space.{name}: must be a positive integer, got {value!r}")
        if not _is_real(self.dropout) or not 0 <= self.dropout < 1:
            raise ValueError(f"search_space.dropout: must be in [0, 1), got {self.dropout!r}")

    # -- construction from plain data -------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "MnasNetSpace":
        """Build from YAML-style data with the config loader (the `search_space` section of an
        experiment): unknown keys and wrong types are errors naming the key."""
        return load_section(cls, data, "search_space")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["base"] = [asdict(b) for b in self.base]
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @property
    def fingerprint(self) -> str:
        """Stable hash of everything that shapes the space's layers (for latency tables)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- decisions ---------------------------------------------------------------------------
    def _choices(self) -> dict[str, tuple[Any, ...]]:
        return {"op": self.ops, "kernel": self.kernels, "se": self.se_ratios, "skip": self.skips,
                "filters": self.filter_multipliers, "layers": self.layer_deltas}

    @property
    def decisions(self) -> list[Decision]:
        """Ordered decisions: per block op, kernel, se, skip, filters, layers."""
        choices = self._choices()
        return [Decision(f"block{i + 1}.{name}", choices[name])
                for i in range(len(self.base)) for name in _DECISION_FIELDS]

    @property
    def size(self) -> int:
        return math.prod(d.size for d in self.decisions)

    def block_out_filters(self, index: int, multiplier: float) -> int:
        return round_filters(self.base[index].filters, multiplier, self.width_divisor)

    def decode(self, actions: Sequence[int]) -> ArchSpec:
        """Integer actions (one per decision, in order) -> ArchSpec."""
        decisions = self.decisions
        if len(actions) != len(decisions):
            raise ValueError(f"expected {len(decisions)} actions, got {len(actions)}")
        picked: list[Any] = []
        for a, d in zip(actions, decisions):
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 0 <= a < d.size:
                raise ValueError(f"action {a!r} for {d.name} is not in 0..{d.size - 1}")
            picked.append(d.choices[int(a)])
        blocks, width, n = [], self.stem_filters, len(_DECISION_FIELDS)
        for i, base in enumerate(self.base):
            op_name, kernel, se, skip, mult, delta = picked[i * n:(i + 1) * n]
            op, expansion = parse_op(op_name)
            out = self.block_out_filters(i, mult)
            blocks.append(BlockSpec(op=op, repeats=max(1, base.layers + delta), kernel=kernel,
                                    stride=base.stride, expansion=expansion, in_filters=width,
                                    out_filters=out, se_ratio=float(se), skip=skip))
            width = out
        return ArchSpec(blocks=tuple(blocks), stem_filters=self.stem_filters,
                        stem_stride=self.stem_stride, head_filters=self.head_filters,
                        dropout=self.dropout)

    def _matches(self, name: str, choice: Any, i: int, block: BlockSpec, base: BaseBlock) -> bool:
        """Whether `choice` of decision `name` gives `block` (block `i`, over `base`)."""
        if name == "op":
            return parse_op(choice) == (block.op, block.expansion)
        if name == "kernel":
            return bool(choice == block.kernel)
        if name == "se":
            return float(choice) == block.se_ratio
        if name == "skip":
            return bool(choice == block.skip)
        if name == "filters":
            return self.block_out_filters(i, choice) == block.out_filters
        return bool(max(1, base.layers + choice) == block.repeats)  # layers

    def encode(self, arch: ArchSpec) -> list[int]:
        """ArchSpec -> actions; ValueError if the architecture is not in this space."""
        if len(arch.blocks) != len(self.base):
            raise ValueError(
                f"architecture has {len(arch.blocks)} blocks, the space {len(self.base)}")
        actions: list[int] = []
        for i, (block, base) in enumerate(zip(arch.blocks, self.base)):
            for name in _DECISION_FIELDS:
                choices = self._choices()[name]
                hits = [j for j, c in enumerate(choices) if self._matches(name, c, i, block, base)]
                if not hits:
                    raise ValueError(
                        f"block {i + 1}: {name} of {block} is not a choice of this space")
                actions.append(hits[0])
            if block.act != "relu":
                raise ValueError(f"block {i + 1}: activation {block.act!r} is not a choice of "
                                 "this space (it builds ReLU layers)")
            if block.stride != base.stride:
                raise ValueError(f"block {i + 1}: stride {block.stride} differs from the space's "
                                 f"{base.stride}")
        if self.decode(actions) != arch.with_(dropout=self.dropout):
            raise ValueError("architecture's stem or head differs from this space's")
        return actions

    def to_strings(self, arch: ArchSpec) -> list[str]:
        """The architecture's text form as the history and export write it: block strings."""
        return encode_arch(arch)

    def from_strings(self, strings: Sequence[str]) -> ArchSpec:
        """Block strings (as `to_strings` writes them) -> ArchSpec with this space's stem/head."""
        return decode_arch(strings, stem_filters=self.stem_filters, stem_stride=self.stem_stride,
                           head_filters=self.head_filters, dropout=self.dropout)

    def sample_actions(self, rng: np.random.Generator) -> list[int]:
        return [int(rng.integers(d.size)) for d in self.decisions]

    def sample(self, rng: np.random.Generator) -> ArchSpec:
        """A uniformly random architecture of the space."""
        return self.decode(self.sample_actions(rng))


_CHOICE_FIELDS = ("base", "ops", "kernels", "se_ratios", "skips", "filter_multipliers",
                  "layer_deltas")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choices(name: str, value: Any) -> tuple[Any, ...]:
    """A non-empty list of distinct choices (duplicates would make two actions mean the same)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ValueError(f"search_space.{name}: expected a list of choices, got {value!r}")
    out = tuple(value)
    if not out:
        raise ValueError(f"search_space.{name}: needs at least one choice")
    if name != "base":
        for i, choice in enumerate(out):
            if choice in out[:i]:
                raise ValueError(f"search_space.{name}: choice {choice!r} is listed twice")
    return out


def _check_each(name: str, values: Sequence[Any], ok: Any, expected: str) -> None:
    for value in values:
        if not ok(value):
            raise ValueError(f"search_space.{name}: {value!r} is not {expected}")


def layer_resolutions(arch: ArchSpec, input_size: int) -> list[tuple[LayerSpec, int]]:
    """Each layer with the spatial size of its input (stride-2 'same' convs halve, rounding up)."""
    size = out_size(input_size, arch.stem_stride)
    out = []
    for layer in arch.layers():
        out.append((layer, size))
        size = out_size(size, layer.stride)
    return out
