"""Naming an architecture: a reference name, block strings, or the JSON file `mnas export
--format json` writes (`export_entry` writes the objects, `resolve_arch` reads them back).

Library code shared by `mnas describe`, `mnas train`, `mnas latency measure` and `mnas export`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_spaces import (ArchSpec, Network, decode_arch, encode_arch, reference_network,
                           reference_network_names)

if TYPE_CHECKING:
    from mnas.search.ranking import Candidate
    from search_spaces.interface import SearchSpace
    from search_spaces.space import MnasNetSpace


#: Largest width multiplier a reference is built at (mobilenet_v2@1e6 does not fit in memory).
MAX_WIDTH = 8.0

#: Keys a block string can start with (official and timm forms).
_BLOCK_KEYS = frozenset({"r", "k", "s", "e", "i", "o", "se", "noskip", "poolskip", "conv", "ir",
                         "ds", "cn"})


def resolve_arch(text: str | list[str]) -> Network:
    """A reference name (optionally `name@width`, e.g. `mobilenet_v2@0.5`, `shufflenet_v2@0.5`),
    block strings (comma- or space-separated, official or timm form), or an `mnas export
    --format json` file. Families outside the block grammar come back as a `FamilyModel`."""
    if isinstance(text, list):
        text = " ".join(text)
    text = text.strip()
    if text.endswith(".json") and Path(text).exists():
        return arch_from_json(Path(text))
    name, _, width = text.partition("@")
    if name in reference_network_names():
        try:
            scale = float(width) if width else 1.0
        except ValueError:
            raise ValueError(f"{text!r}: width after '@' must be a number") from None
        if scale > MAX_WIDTH:  # (<= 0 and nan: reference_arch's own message)
            raise ValueError(f"{text!r}: width multiplier must be at most {MAX_WIDTH:g}, got "
                             f"{width}")
        return reference_network(name, scale)
    if text.endswith(".json"):
        raise FileNotFoundError(f"{text}: no such file")
    strings = [s for s in text.replace(",", " ").split() if s]
    first_key = re.sub(r"[0-9_].*", "", strings[0]) if strings else ""
    if first_key not in _BLOCK_KEYS:  # e.g. a misspelt reference name, not a block string
        raise ValueError(f"{text!r} is neither a reference name "
                         f"({', '.join(reference_network_names())}), "
                         "block strings, nor an existing export .json file")
    fmt = "timm" if strings[0].split("_", 1)[0] in ("ir", "ds", "cn") else "tf"
    return decode_arch(strings, format=fmt)


def arch_from_json(path: Path) -> ArchSpec:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    entry = data[0] if isinstance(data, list) and data else data
    if not isinstance(entry, dict) or "blocks" not in entry:
        raise ValueError(f"{path}: expected an object (or list of objects) with 'blocks'")
    extra = {k: entry[k] for k in ("stem_filters", "stem_stride", "head_filters", "dropout",
                                   "activation") if k in entry}
    return decode_arch(entry["blocks"], format=entry.get("format", "tf"), **extra)


def to_arch(candidate: Candidate, space: MnasNetSpace) -> ArchSpec:
    """Decode the logged (tf) block strings with the space's stem, head and dropout."""
    return decode_arch(list(candidate.arch), format="tf", stem_filters=space.stem_filters,
                       stem_stride=space.stem_stride, head_filters=space.head_filters,
                       dropout=space.dropout)


def export_entry(candidate: Candidate, space: SearchSpace[Any],
                 fmt: str = "tf") -> dict[str, Any]:
    """The JSON object `mnas describe`/`mnas train` read back (plus provenance fields)."""
    from search_spaces.registry import space_to_dict
    from search_spaces.space import MnasNetSpace

    if not isinstance(space, MnasNetSpace):  # another space: its name and own lossless text
        strings = space.to_strings(space.from_strings(list(candidate.arch)))
        return {"space": space_to_dict(space)["name"], "arch": strings, "format": "space",
                "reward": candidate.reward, "accuracy": candidate.accuracy,
                "latency_ms": candidate.latency_ms, "child": candidate.index,
                "params": candidate.params, "macs": candidate.macs}
    arch = to_arch(candidate, space)
    return {"blocks": encode_arch(arch, format=fmt), "format": fmt,
            "reward": candidate.reward, "accuracy": candidate.accuracy,
            "latency_ms": candidate.latency_ms, "stem_filters": arch.stem_filters,
            "stem_stride": arch.stem_stride, "head_filters": arch.head_filters,
            "dropout": arch.dropout, "input_size": space.input_size,
            "num_classes": space.num_classes, "child": candidate.index,
            "params": candidate.params, "macs": candidate.macs}
