"""Per-architecture tables measured elsewhere: one CSV column keyed by the architecture string.

The NAS-Bench-201 table (`arch`, `cifar10_test`, `latency_ms_pixel3`, ...) is the model: a key
column holding each architecture's text form (`space.to_strings`, joined by spaces) and numeric
columns. Both the `table` evaluator (accuracy) and the `csv_column` latency predictor read it
here, with one-line errors naming the config key.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search_spaces.interface import Arch, SearchSpace


def arch_key(space: SearchSpace[Arch], arch: Arch) -> str:
    """The table key of `arch`: its lossless text form (block strings joined by spaces)."""
    return " ".join(space.to_strings(arch))


def read_column(path: str | os.PathLike[str] | None, column: str | None, *,
                space: SearchSpace[Any], key_column: str = "arch", path_key: str,
                column_key: str) -> dict[str, float]:
    """{architecture key: value} of `column`. Errors are ValueErrors naming the config key:
    a missing file (`path_key`), an unknown column (`column_key`), a non-numeric value, or keys
    that are not architectures of `space` (a space/table mismatch)."""
    if not path:
        raise ValueError(f"{path_key}: needs the CSV file")
    if not column:
        raise ValueError(f"{column_key}: needs the name of a column of {path}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path_key}: {path} does not exist")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            names = list(reader.fieldnames or [])
            for wanted, key in ((key_column, path_key), (column, column_key)):
                if wanted not in names:
                    raise ValueError(f"{key}: {wanted!r} is not a column of {path} (columns: "
                                     f"{', '.join(names) or 'none'})")
            rows = [(row[key_column], row[column], n) for n, row in enumerate(reader, 2)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path_key}: {path} is not a readable CSV file ({exc})") from None
    if not rows:
        raise ValueError(f"{path_key}: {path} has no rows")
    _check_keys_fit(space, rows[0][0], path, path_key)
    out: dict[str, float] = {}
    for key, text, line in rows:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise ValueError(f"{column_key}: {path} line {line}: {column} is {text!r}, not a "
                             "number") from None
        if not math.isfinite(value):
            raise ValueError(f"{column_key}: {path} line {line}: {column} is {text!r}")
        out[key] = value
    return out


def _check_keys_fit(space: SearchSpace[Any], key: str, path: Path, path_key: str) -> None:
    """The first key must be an architecture of the space, written as the space writes it."""
    try:
        arch = space.from_strings(key.split(" "))
        space.encode(arch)
        ok = arch_key(space, arch) == key
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise ValueError(f"{path_key}: {path} keys architectures of another search space "
                         f"(first key {key[:80]!r} is not one of this space's)")


def lookup(table: dict[str, float], space: SearchSpace[Arch], arch: Arch, where: str) -> float:
    key = arch_key(space, arch)
    try:
        return table[key]
    except KeyError:
        raise ValueError(f"{where}: no row for architecture {key!r}") from None


__all__ = ["arch_key", "lookup", "read_column"]
