"""The search history: `history.jsonl`, one JSON object per finished child.

Append-only and flushed + fsync'd per record, because the history is the authoritative record of a
search: a resume trusts it over everything else. A line torn by a kill mid-write is cut away on
resume (`load_history(..., repair=True)`) instead of failing or being silently skipped.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from mnas.fileio import interrupts_deferred

#: Fields every record carries (documented run-directory format).
RECORD_FIELDS: tuple[str, ...] = (
    "index", "arch", "actions", "accuracy", "latency_ms", "reward", "status", "params", "macs",
    "train_time_s", "wall_time_s", "worker", "attempts", "error", "cached",
)


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

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps({k: _clean(v) for k, v in record.items()}, allow_nan=False)
        with interrupts_deferred():  # a Ctrl-C lands after the line, not inside it
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "HistoryWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What a resume needs from every record (`load_history(..., validate=True)`).
_REQUIRED: dict[str, Any] = {
    "index": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "arch": lambda v: isinstance(v, list) and bool(v) and all(isinstance(s, str) for s in v),
    "status": lambda v: isinstance(v, str),
    "reward": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
}


def check_record(record: dict[str, Any], where: str) -> None:
    """ValueError naming `where` (file and line) and the first missing or malformed field."""
    for key, ok in _REQUIRED.items():
        if key not in record:
            raise ValueError(f"{where}: record has no {key!r} (corrupt history)")
        if not ok(record[key]):
            raise ValueError(f"{where}: {key} is {record[key]!r} (corrupt history)")


def load_history(path: str | os.PathLike[str], *, repair: bool = False,
                 validate: bool = False) -> list[dict[str, Any]]:
    """Read every record. A torn final line (no newline, or unparsable) is an interrupted write:
    with `repair` it is truncated away on disk, otherwise ignored. A bad line elsewhere is
    corruption and raises ValueError naming the file and line; so does, with `validate`, a
    record without the fields a resume needs (`check_record`)."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    offset = 0
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        is_last = number == len(lines)
        end = offset + len(raw) + (0 if is_last else 1)
        if raw.strip():
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError:
                if not (is_last or (number == len(lines) - 1 and not lines[-1])):
                    raise ValueError(f"{path}: line {number} is not a JSON object "
                                     "(corrupt history)")
                if repair:
                    _truncate(path, offset)
                return records
            if validate:
                check_record(record, f"{path}: line {number}")
            if is_last and repair:  # complete JSON but no newline: finish the line
                with open(path, "ab") as handle:
                    handle.write(b"\n")
            records.append(record)
        offset = end
    return records


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def best_record(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The record with the highest reward among successful children (None if there is none)."""
    ok = [r for r in records if r.get("status") == "ok" and r.get("reward") is not None]
    return max(ok, key=lambda r: r["reward"], default=None)
