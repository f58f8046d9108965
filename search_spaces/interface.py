"""The interface every search space has (`search_spaces.registry` names them), as a Protocol.

A controller sees only `decisions` and emits integer actions; the space turns actions into its own
frozen architecture type (`ArchSpec`, `Nb201Arch`, `OfaArch`) and back, and writes it as the
lossless strings the history and the export hold. Code that works on any space types it
`SearchSpace[Any]`; code for one space names the concrete class.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from .space import Decision

Arch = TypeVar("Arch")


class HasDecisions(Protocol):
    """What a controller sees of a space: the ordered categorical decisions."""

    @property
    def decisions(self) -> list[Decision]: ...


class SearchSpace(HasDecisions, Protocol[Arch]):
    """A search space whose architectures are `Arch`."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, /) -> SearchSpace[Arch]: ...

    @property
    def size(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    def decode(self, actions: Sequence[int], /) -> Arch: ...

    def encode(self, arch: Arch, /) -> list[int]: ...

    def to_strings(self, arch: Arch, /) -> list[str]: ...

    def from_strings(self, strings: Sequence[str], /) -> Arch: ...

    def sample_actions(self, rng: np.random.Generator, /) -> list[int]: ...

    def sample(self, rng: np.random.Generator, /) -> Arch: ...

    def to_dict(self) -> dict[str, Any]: ...
