"""The latency lookup table: a JSON file of per-entry timings, provenance and calibration.

The file is self-describing so that a table is never silently applied to the wrong space,
resolution or device: it stores the space (and its fingerprint), the profiler settings and the
machine it was measured on. Partial tables are written atomically during a build and carry
`complete: false`, so an interrupted build resumes where it stopped.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_spaces.space import MnasNetSpace

from .calibrate import check_calibration


class TableError(ValueError):
    """A latency table that cannot serve: missing, corrupt, incomplete, or built for another
    space (callers attribute it to the config's `latency.table`)."""


class TableNotFound(TableError, FileNotFoundError):
    """No table file at the path."""


FORMAT = "mnas-latency-table"
VERSION = 1


@dataclass(frozen=True)
class LatencyTable:
    """Loaded table data. `entries` maps key -> {"ms", "spread", "passes_ms", ...}; `samples`
    holds end-to-end measurements (actions, ms, spread) used to fit `calibration` and the flops
    cost; `validation` holds more of them, timed interleaved with the build but never fitted on."""

    space: dict[str, Any]
    fingerprint: str
    provenance: dict[str, Any]
    entries: dict[str, dict[str, Any]]
    samples: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    canary: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    path: str = ""

    def ms(self) -> dict[str, float]:
        return {k: float(v["ms"]) for k, v in self.entries.items()}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "complete": self.complete,
                "space_fingerprint": self.fingerprint, "space": self.space,
                "provenance": self.provenance, "calibration": self.calibration,
                "entries": self.entries, "samples": self.samples, "canary": self.canary,
                "validation": self.validation}

    def check_space(self, space: MnasNetSpace) -> None:
        """ValueError naming what differs when this table was built for another space."""
        if space.fingerprint == self.fingerprint:
            return
        mine = space.to_dict()
        diffs = [k for k in sorted(set(mine) | set(self.space)) if mine.get(k) != self.space.get(k)]
        detail = ", ".join(f"{k} (table {self.space.get(k)!r}, config {mine.get(k)!r})"
                           for k in diffs[:3]) or "fingerprint"
        where = self.path or "latency table"
        raise TableError(f"{where}: built for another search space: {detail}")


def save_table(table: LatencyTable, path: str | os.PathLike[str]) -> None:
    """Atomic write: temp file in the same directory, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table.to_json(), indent=1, sort_keys=True))
    os.replace(tmp, path)


def load_table(path: str | os.PathLike[str]) -> LatencyTable:
    """Read and validate a table file; ValueError naming the file and what is wrong."""
    path = Path(path)
    if not path.exists():
        raise TableNotFound(f"{path}: no such latency table (build one with "
                                "`mnas latency build CONFIG --out FILE`)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: corrupt latency table (not valid JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TableError(f"{path}: not an mnas latency table (missing format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise TableError(f"{path}: latency table version {data.get('version')!r}, "
                         f"this mnas reads version {VERSION}")
    for key, kind in (("space", dict), ("entries", dict), ("provenance", dict),
                      ("space_fingerprint", str)):
        if not isinstance(data.get(key), kind):
            raise TableError(f"{path}: corrupt latency table ({key!r} missing or not a "
                             f"{kind.__name__})")
    for key, value in data["entries"].items():
        ms = value.get("ms") if isinstance(value, dict) else None
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) \
                or ms < 0:
            raise TableError(f"{path}: corrupt latency table (entry {key!r} has no valid 'ms': "
                             f"{ms!r}, expected a finite number >= 0)")
    try:
        space = MnasNetSpace.from_dict(data["space"])
    except (TypeError, ValueError) as exc:
        raise TableError(f"{path}: corrupt latency table (space: {exc})") from None
    if space.fingerprint != data["space_fingerprint"]:
        raise TableError(f"{path}: corrupt latency table (space fingerprint does not match its "
                         "space)")
    problem = check_calibration(data.get("calibration") or {}, len(space.base) + 2)
    if problem is not None:
        raise ValueError(f"{path}: corrupt latency table ({problem})")
    return LatencyTable(space=data["space"], fingerprint=data["space_fingerprint"],
                        provenance=data["provenance"], entries=data["entries"],
                        samples=list(data.get("samples") or []),
                        calibration=dict(data.get("calibration") or {}),
                        canary=list(data.get("canary") or []),
                        validation=list(data.get("validation") or []),
                        complete=bool(data.get("complete")), path=str(path))
