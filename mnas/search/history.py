"""The search history: `history.jsonl`, one JSON object (a `HistoryRecord`) per finished child.

Append-only and flushed + fsync'd per record, because the history is the authoritative record of a
search: a resume trusts it over everything else. `parse_history` is the one reader (resume and
`mnas export` both use it): a line torn by a kill mid-write (the last line, unterminated) is cut
away on resume (`repair=True`) or skipped with a warning, instead of failing; any other bad line
is corruption and an error naming the file and line.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mnas.fileio import interrupts_deferred

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


@dataclass(frozen=True, kw_only=True)
class HistoryRecord:
    """One finished child, as `history.jsonl` stores it (field order = key order on disk).

    `index` is its place in sample order; `arch` its block strings; `reward` what the controller
    was told (`failed_reward` unless status is ok); `train_time_s` the trainer's own time,
    `wall_time_s` dispatch to result; `cached` marks a repeat of an architecture trained before
    (its result copied, nothing trained). `train_loss`, `epochs`, `images_per_s` are kept when
    the trainer reports them."""

    index: int
    arch: tuple[str, ...]
    actions: tuple[int, ...] = ()
    accuracy: float | None = None
    latency_ms: float | None = None
    reward: float | None
    status: str
    params: int | None = None
    macs: int | None = None
    error: str | None = None
    train_time_s: float | None = None
    wall_time_s: float | None = None
    worker: str | None = None
    attempts: int = 0
    train_loss: float | None = None
    epochs: float | None = None
    images_per_s: float | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; the optional trainer statistics only when present."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["arch"], out["actions"] = list(self.arch), list(self.actions)
        for key in _TRAINER_EXTRAS:
            if out[key] is None:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> "HistoryRecord":
        """Check a parsed line against the schema: ValueError naming `where` (file and line) and
        the first missing or malformed field. Keys this version does not know are ignored."""
        for key, ok in _CHECKS.items():
            if key not in data:
                if key in _REQUIRED:
                    raise ValueError(f"{where}: record has no {key!r} (corrupt history)")
            elif not ok(data[key]):
                raise ValueError(f"{where}: {key} is {data[key]!r} (corrupt history)")
        values = {k: data[k] for k in _CHECKS if k in data}
        values["arch"] = tuple(values["arch"])
        values["actions"] = tuple(values.get("actions", ()))
        return cls(**values)


_TRAINER_EXTRAS = ("train_loss", "epochs", "images_per_s")
#: What a resume needs from every record.
_REQUIRED = ("index", "arch", "status", "reward")
_CHECKS: dict[str, Callable[[Any], bool]] = {
    "index": lambda v: _is_int(v) and v >= 0,
    "arch": lambda v: isinstance(v, list) and bool(v) and all(isinstance(s, str) for s in v),
    "actions": lambda v: isinstance(v, list) and all(_is_int(a) for a in v),
    "status": lambda v: isinstance(v, str),
    "reward": _optional(_is_num), "accuracy": _optional(_is_num),
    "latency_ms": _optional(_is_num), "params": _optional(_is_int), "macs": _optional(_is_int),
    "error": _optional(lambda v: isinstance(v, str)),
    "train_time_s": _optional(_is_num), "wall_time_s": _optional(_is_num),
    "worker": _optional(lambda v: isinstance(v, str)), "attempts": _is_int,
    "train_loss": _optional(_is_num), "epochs": _optional(_is_num),
    "images_per_s": _optional(_is_num), "cached": lambda v: isinstance(v, bool),
}


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every line stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class HistoryWriter:
    """Appends records to history.jsonl; each record is durable when `append` returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")
        self.defer_sync = False

    def append(self, record: HistoryRecord) -> None:
        """Write, flush and fsync one line; while `defer_sync` is set the fsync is left to a
        later `sync()` (a batch of cheap children: the line survives a killed process, a power
        cut may take it)."""
        line = json.dumps({k: _clean(v) for k, v in record.to_dict().items()}, allow_nan=False)
        with interrupts_deferred():  # a Ctrl-C lands after the line, not inside it
            self._file.write(line + "\n")
            self._file.flush()
            if not self.defer_sync:
                os.fsync(self._file.fileno())

    def sync(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "HistoryWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ParsedHistory:
    """What `parse_history` read: (line number, record) pairs and warnings (a skipped torn line)."""

    path: Path
    lines: tuple[tuple[int, HistoryRecord], ...]
    warnings: tuple[str, ...] = ()

    @property
    def records(self) -> list[HistoryRecord]:
        return [record for _, record in self.lines]


def parse_history(path: str | os.PathLike[str], *, repair: bool = False) -> ParsedHistory:
    """Read and check every record (`HistoryRecord.from_dict`). The last line, when it is not
    newline-terminated and does not parse, is an interrupted write: with `repair` it is truncated
    away on disk, otherwise skipped with a warning. A complete last record without its newline
    gets one with `repair`. Any other bad line is corruption: ValueError naming file and line."""
    path = Path(path)
    if not path.exists():
        return ParsedHistory(path, ())
    data = path.read_bytes()
    out: list[tuple[int, HistoryRecord]] = []
    offset = 0
    raw_lines = data.split(b"\n")
    for number, raw in enumerate(raw_lines, start=1):
        unterminated = number == len(raw_lines)  # only the text after the last newline
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                parsed = None
            if not isinstance(parsed, dict):
                if not unterminated:
                    raise ValueError(f"{path}: line {number} is not a JSON object "
                                     "(corrupt history)")
                if repair:
                    _truncate(path, offset)
                    return ParsedHistory(path, tuple(out))
                return ParsedHistory(path, tuple(out), (
                    f"{path}: line {number} is incomplete (an interrupted write); skipped",))
            out.append((number, HistoryRecord.from_dict(parsed, f"{path}: line {number}")))
            if unterminated and repair:  # complete JSON but no newline: finish the line
                with open(path, "ab") as handle:
                    handle.write(b"\n")
        offset += len(raw) + 1
    return ParsedHistory(path, tuple(out))


def load_history(path: str | os.PathLike[str], *, repair: bool = False) -> list[HistoryRecord]:
    """Every record of a history file (none if there is no file yet); see `parse_history`."""
    return parse_history(path, repair=repair).records


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())
