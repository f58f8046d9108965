"""Ranking the children of a search: the one home of "best" and of the Pareto front.

Pure functions over logged records, so ranking never retrains anything: `read_history` (the
history file's ok children as `Candidate`s), `best` and `rank` by reward (one tie rule: lower
latency, then earlier child), `pareto_front` of accuracy vs latency, and `rescore` under another
latency target or reward shape from the logged accuracy and latency. Used by the search loop
(best so far), the tracker (plot) and `mnas export`.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mnas.reward import mnas_reward_many
from mnas.search.history import HistoryRecord, parse_history


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


def to_candidate(record: HistoryRecord, where: str = "", line: int = 0) -> Candidate:
    """An ok record as a ranking candidate; its accuracy, latency and reward must be finite
    numbers (ValueError naming `where` otherwise)."""
    return Candidate(index=record.index, arch=record.arch, line=line,
                     accuracy=_number(record.accuracy, where, "accuracy"),
                     latency_ms=_number(record.latency_ms, where, "latency_ms", positive=True),
                     reward=_number(record.reward, where, "reward"), params=record.params,
                     macs=record.macs)


def candidates(records: Iterable[HistoryRecord]) -> list[Candidate]:
    """The ok records (in order) as candidates; one without a finite accuracy (a custom trainer
    may report one) has nothing to rank and is left out."""
    out = []
    for record in records:
        if record.status == "ok":
            try:
                out.append(to_candidate(record))
            except ValueError:
                continue
    return out


def read_history(path: str | os.PathLike[str]) -> History:
    """Read history.jsonl without modifying it. Only `status == "ok"` records become candidates;
    the others are counted. Malformed ok records are errors naming file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such history file")
    parsed = parse_history(path)
    counts: Counter[str] = Counter(record.status for _, record in parsed.lines)
    found = [to_candidate(record, f"{path}: line {line}", line)
             for line, record in parsed.lines if record.status == "ok"]
    return History(path, tuple(found), dict(counts), parsed.warnings)


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


def best(candidates: Iterable[Candidate]) -> Candidate | None:
    """The best-rewarded candidate (ties: lower latency, then earlier child); None if none."""
    return min(candidates, key=_key, default=None)


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
