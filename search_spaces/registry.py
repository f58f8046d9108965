"""Search spaces by name: `search_space.name` in a config selects one (default `mnasnet`).

Every space has the same small interface (`search_spaces.interface.SearchSpace`): `decisions`
(what controllers see), `decode(actions)` -> a frozen spec, `encode(spec)` -> actions, `size`,
`to_strings(spec)` / `from_strings(strings)` (the lossless text the history and export write),
`from_dict` / `to_dict` and `fingerprint`.
"""
from __future__ import annotations

from typing import Any, Mapping

from .interface import SearchSpace
from .nasbench201 import NasBench201Space
from .ofa import OfaMobileNetV3Space
from .space import MnasNetSpace

#: Space name -> class (each has `from_dict`).
SPACES: dict[str, type[SearchSpace[Any]]] = {
    "mnasnet": MnasNetSpace,
    "nasbench201": NasBench201Space,
    "ofa_mobilenetv3": OfaMobileNetV3Space,
}
DEFAULT_SPACE = "mnasnet"


def space_name(data: Mapping[str, Any] | None) -> str:
    """The space a `search_space` mapping selects; ValueError naming the key for an unknown one."""
    if data is not None and not isinstance(data, Mapping):
        raise ValueError(f"search_space: expected a mapping of settings, got {data!r}")
    name = (data or {}).get("name", DEFAULT_SPACE)
    if name not in SPACES:
        raise ValueError(f"search_space.name: unknown space {name!r} (expected one of "
                         f"{', '.join(SPACES)})")
    return str(name)


def create_space(data: Mapping[str, Any] | None) -> SearchSpace[Any]:
    """A space from its `search_space` mapping (`name` plus that space's own settings)."""
    name = space_name(data)
    settings = {k: v for k, v in (data or {}).items() if k != "name"}
    return SPACES[name].from_dict(settings)


def space_to_dict(space: SearchSpace[Any]) -> dict[str, Any]:
    """The space's full, normalised mapping including its `name` (what a saved config holds)."""
    name = next(n for n, cls in SPACES.items() if isinstance(space, cls))
    return {"name": name, **{k: v for k, v in space.to_dict().items() if k != "name"}}


__all__ = ["DEFAULT_SPACE", "SPACES", "create_space", "space_name", "space_to_dict"]
