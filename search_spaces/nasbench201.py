"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): 6 edges x 5 ops = 15,625 cells.

A cell has 4 nodes; node j (1..3) sums one op applied to each earlier node i. The official string
lists the edges node by node, `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, and is the architecture's key
in every NAS-Bench-201 table, so `Nb201Arch` keeps exactly that string as its lossless text form.
Controllers see 6 decisions (one per edge, in the string's order) of 5 ops each.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mnas.config.loader import load_section

from .space import Decision

#: The benchmark's op names, in its own order (index i is action i).
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                              "avg_pool_3x3")
#: (to node, from node) of each edge, in the official string's order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_NODE = re.compile(r"\|([^|]*)\|")


@dataclass(frozen=True)
class Nb201Arch:
    """One cell: the op on each of the 6 edges, in `EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.ops, str) or not isinstance(self.ops, Sequence):
            raise ValueError(f"Nb201Arch.ops: expected 6 op names, got {self.ops!r}")
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != len(EDGES):
            raise ValueError(f"Nb201Arch.ops: expected {len(EDGES)} op names, got {len(self.ops)}")
        for op in self.ops:
            if op not in NB201_OPS:
                raise ValueError(f"NAS-Bench-201 op {op!r}: expected one of {', '.join(NB201_OPS)}")

    def to_string(self) -> str:
        """The official string, e.g. `|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|`."""
        nodes = []
        for node in (1, 2, 3):
            nodes.append("|" + "|".join(f"{op}~{i}" for op, (j, i) in zip(self.ops, EDGES)
                                        if j == node) + "|")
        return "+".join(nodes)

    @classmethod
    def from_string(cls, text: str) -> "Nb201Arch":
        """Parse the official string; ValueError naming the string and the offending part."""
        if not isinstance(text, str):
            raise ValueError(f"NAS-Bench-201 string: expected text, got {text!r}")
        parts = text.split("+")
        if len(parts) != 3:
            raise ValueError(f"NAS-Bench-201 string {text!r}: expected 3 nodes separated by '+'")
        ops: list[str] = []
        for node, part in enumerate(parts, 1):
            if not (part.startswith("|") and part.endswith("|") and len(part) > 1):
                raise ValueError(f"NAS-Bench-201 string {text!r}: node {part!r} must be "
                                 "'|op~i|...|'")
            edges = part[1:-1].split("|")
            if len(edges) != node:
                raise ValueError(f"NAS-Bench-201 string {text!r}: node {node} needs {node} "
                                 f"edges, got {part!r}")
            for i, edge in enumerate(edges):
                op, sep, source = edge.partition("~")
                if not sep or source != str(i):
                    raise ValueError(f"NAS-Bench-201 string {text!r}: edge {edge!r} should be "
                                     f"'op~{i}'")
                if op not in NB201_OPS:
                    raise ValueError(f"NAS-Bench-201 string {text!r}: op {op!r} is not one of "
                                     f"{', '.join(NB201_OPS)}")
                ops.append(op)
        return cls(tuple(ops))

    def __str__(self) -> str:
        return self.to_string()


@dataclass(frozen=True)
class NasBench201Space:
    """The NAS-Bench-201 topology space. No settings: the cell is the benchmark's."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "NasBench201Space":
        """The `search_space` settings (none besides `name`), checked by the config loader."""
        return load_section(cls, data, "search_space")

    def to_dict(self) -> dict[str, Any]:
        return {}

    @property
    def fingerprint(self) -> str:
        return "nasbench201"

    @property
    def decisions(self) -> list[Decision]:
        return [Decision(f"edge{j}<-{i}", NB201_OPS) for j, i in EDGES]

    @property
    def size(self) -> int:
        return math.prod(d.size for d in self.decisions)

    def decode(self, actions: Sequence[int]) -> Nb201Arch:
        if len(actions) != len(EDGES):
            raise ValueError(f"expected {len(EDGES)} actions, got {len(actions)}")
        for a, (j, i) in zip(actions, EDGES):
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)) \
                    or not 0 <= a < len(NB201_OPS):
                raise ValueError(f"action {a!r} for edge{j}<-{i} is not in 0..{len(NB201_OPS) - 1}")
        return Nb201Arch(tuple(NB201_OPS[int(a)] for a in actions))

    def encode(self, arch: Nb201Arch) -> list[int]:
        if not isinstance(arch, Nb201Arch):
            raise ValueError(f"expected a NAS-Bench-201 cell, got {type(arch).__name__}")
        return [NB201_OPS.index(op) for op in arch.ops]

    def to_strings(self, arch: Nb201Arch) -> list[str]:
        """The architecture's text form as the history and export write it: one string."""
        return [arch.to_string()]

    def from_strings(self, strings: Sequence[str]) -> Nb201Arch:
        if isinstance(strings, str) or len(strings) != 1:
            raise ValueError(f"a NAS-Bench-201 architecture is one string, got {strings!r}")
        return Nb201Arch.from_string(strings[0])

    def sample_actions(self, rng: np.random.Generator) -> list[int]:
        return [int(rng.integers(d.size)) for d in self.decisions]

    def sample(self, rng: np.random.Generator) -> Nb201Arch:
        return self.decode(self.sample_actions(rng))


__all__ = ["EDGES", "NB201_OPS", "NasBench201Space", "Nb201Arch"]
