"""Pick the best architectures of a finished (or running) search from its `history.jsonl`.

Pure functions over the logged records, so ranking never retrains anything: `read_history`
(strict about corruption, tolerant of the one torn line a kill can leave at the end), `rank` by
reward, `pareto_front` of accuracy vs latency, and `rescore` under another latency target or
reward shape from the logged accuracy and latency. The CLI is `mnas/commands/export.py`.
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mnas.reward import mnas_reward_many
from search_spaces.blockstrings import decode_arch, encode_arch
from search_spaces.specs import ArchSpec


@dataclass(frozen=True)
class Candidate:
    """One successfully trained child (`status == "ok"`) as logged. `line` is its line number in
    history.jsonl; `seen` how many ok records share its architecture (re-samples, cache hits)."""

    index: int
    arch: tuple[str, ...]
    accuracy: float
    latency_ms: float
    reward: float
    line: int
    params: int | None = None
    macs: int | None = None
    seen: int = 1


@dataclass(frozen=True)
class History:
    """What a history file holds: ranked-able candidates, counts per status, read warnings."""

    path: Path
    candidates: tuple[Candidate, ...]
    status_counts: dict[str, int]
    warnings: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.status_counts.values())


def _number(value: Any, where: str, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        kind = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{where}: {name} must be {kind} for an ok child, got {value!r}")
    return float(value)


def _candidate(record: dict[str, Any], where: str, line: int) -> Candidate:
    arch = record.get("arch")
    if not isinstance(arch, list) or not arch or not all(isinstance(s, str) for s in arch):
        raise ValueError(f"{where}: arch must be a list of block strings, got {arch!r}")
    index = record.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"{where}: index must be an integer, got {index!r}")
    optional = {k: record.get(k) if isinstance(record.get(k), int) else None
                for k in ("params", "macs")}
    return Candidate(index=index, arch=tuple(arch), line=line,
                     accuracy=_number(record.get("accuracy"), where, "accuracy"),
                     latency_ms=_number(record.get("latency_ms"), where, "latency_ms",
                                        positive=True),
                     reward=_number(record.get("reward"), where, "reward"), **optional)


def _parse_lines(path: Path, data: bytes) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line number, record) pairs; a bad final line is a torn write (warning), others errors."""
    lines = data.split(b"\n")
    last = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    out, warnings = [], []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict):
            torn = i == last and not data.endswith(b"\n")
            if torn:
                warnings.append(f"{path}: line {i + 1} is incomplete (an interrupted write); "
                                "skipped")
                continue
            raise ValueError(f"{path}: line {i + 1} is not a JSON object (corrupt history)")
        out.append((i + 1, record))
    return out, warnings


def read_history(path: str | os.PathLike[str]) -> History:
    """Read history.jsonl without modifying it. Only `status == "ok"` records become candidates;
    the others are counted. Malformed ok records are errors naming file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such history file")
    parsed, warnings = _parse_lines(path, path.read_bytes())
    counts: Counter[str] = Counter()
    candidates = []
    for line, record in parsed:
        status = record.get("status")
        counts[str(status)] += 1
        if status == "ok":
            candidates.append(_candidate(record, f"{path}: line {line}", line))
    return History(path, tuple(candidates), dict(counts), tuple(warnings))


def unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    """One candidate per architecture: the best-rewarded occurrence, with `seen` = occurrences."""
    best: dict[tuple[str, ...], Candidate] = {}
    seen: Counter[tuple[str, ...]] = Counter()
    for c in candidates:
        seen[c.arch] += 1
        if c.arch not in best or _key(c) < _key(best[c.arch]):
            best[c.arch] = c
    return [replace(c, seen=seen[a]) for a, c in best.items()]


def _key(c: Candidate) -> tuple[float, float, int]:
    return (-c.reward, c.latency_ms, c.index)


def rank(candidates: Iterable[Candidate], k: int | None = None) -> list[Candidate]:
    """Best reward first (ties: lower latency, then earlier child); one entry per architecture."""
    if k is not None and k < 1:
        raise ValueError(f"--top must be >= 1, got {k}")
    ordered = sorted(unique(candidates), key=_key)
    return ordered if k is None else ordered[:k]


def pareto_front(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Architectures no other beats on both accuracy (higher) and latency (lower), fastest
    first. Exact ties keep one representative (the best-rewarded, then earliest)."""
    ordered = sorted(unique(candidates), key=lambda c: (c.latency_ms, -c.accuracy, _key(c)))
    front: list[Candidate] = []
    for c in ordered:
        if not front or c.accuracy > front[-1].accuracy:
            front.append(c)
    return front


def rescore(candidates: Sequence[Candidate], *, target_ms: float, alpha: float,
            beta: float) -> list[Candidate]:
    """The same candidates with `reward` recomputed from logged accuracy and latency."""
    if not candidates:
        return []
    acc = np.array([c.accuracy for c in candidates])
    lat = np.array([c.latency_ms for c in candidates])
    rewards = mnas_reward_many(acc, lat, target_ms=target_ms, alpha=alpha, beta=beta)
    return [replace(c, reward=float(r)) for c, r in zip(candidates, rewards)]


def to_arch(candidate: Candidate, space: Any) -> ArchSpec:
    """Decode the logged (tf) block strings with the space's stem, head and dropout."""
    return decode_arch(list(candidate.arch), format="tf", stem_filters=space.stem_filters,
                       stem_stride=space.stem_stride, head_filters=space.head_filters,
                       dropout=space.dropout)


def export_entry(candidate: Candidate, space: Any, fmt: str = "tf") -> dict[str, Any]:
    """The JSON object `mnas describe`/`mnas train` read back (plus provenance fields)."""
    arch = to_arch(candidate, space)
    return {"blocks": encode_arch(arch, format=fmt), "format": fmt,
            "reward": candidate.reward, "accuracy": candidate.accuracy,
            "latency_ms": candidate.latency_ms, "stem_filters": arch.stem_filters,
            "stem_stride": arch.stem_stride, "head_filters": arch.head_filters,
            "dropout": arch.dropout, "input_size": space.input_size,
            "num_classes": space.num_classes, "child": candidate.index,
            "params": candidate.params, "macs": candidate.macs}
