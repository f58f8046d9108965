"""Yardstick tasks: a search space whose every architecture's accuracy and latency are known.

A `Task` turns a batch of action rows into (accuracy, latency) arrays without training anything,
and scores them with the MnasNet reward. NAS-Bench-201 is a table: every one of its 15,625 cells
is looked up once, by its official string, into arrays indexed by the action row's mixed-radix
code, so a 2,000-sample search costs microseconds of lookups. Its optimum reward is exact (by
enumeration). A task without a known optimum (`optimum` None) is scored against the best reward
any run found.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mnas.reward import REWARD_PRESETS, mnas_reward_many

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nas-benchmarks"
NB201_CSV = DATA / "nasbench201" / "nasbench201_hw.csv"


@dataclass
class Task:
    """A search problem with known answers. `evaluate(rows)` -> (accuracy %, latency ms)."""

    name: str
    space: Any
    evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    target_ms: float
    reward: str  # "hard" | "soft"
    optimum: float | None = None  # exact optimum reward, when enumerable
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.space.decisions)

    def score(self, accuracy: np.ndarray, latency: np.ndarray) -> np.ndarray:
        alpha, beta = REWARD_PRESETS[self.reward]
        return mnas_reward_many(accuracy, latency, target_ms=self.target_ms, alpha=alpha,
                                beta=beta)


class ColumnLatency:
    """A latency predictor for constrained random search: the task's own latency, looked up."""

    def __init__(self, space: Any, evaluate: Callable[[np.ndarray], tuple[np.ndarray,
                                                                           np.ndarray]]) -> None:
        self.space, self.evaluate = space, evaluate

    def predict_many(self, archs: Sequence[Any]) -> np.ndarray:
        rows = np.asarray([self.space.encode(a) for a in archs], dtype=np.int64)
        return self.evaluate(rows)[1]

    def predict(self, arch: Any) -> float:
        return float(self.predict_many([arch])[0])


class Nb201Table:
    """The NAS-Bench-201 CSV as arrays indexed by the action code (one pass over the file)."""

    def __init__(self, path: Path, accuracy_column: str, latency_column: str) -> None:
        from search_spaces.nasbench201 import NasBench201Space, Nb201Arch

        self.space = NasBench201Space()
        self.radix = np.cumprod([1] + [d.size for d in self.space.decisions][:-1]).astype(np.int64)
        n = int(np.prod([d.size for d in self.space.decisions]))
        self.accuracy = np.full(n, np.nan)
        self.latency = np.full(n, np.nan)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such table (see bench/README.md: the shared "
                                    "nas-benchmarks data)")
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            for column in ("arch", accuracy_column, latency_column):
                if column not in (reader.fieldnames or []):
                    raise ValueError(f"{path}: no column {column!r} (columns: "
                                     f"{', '.join(reader.fieldnames or [])})")
            for row in reader:
                code = int(np.dot(self.space.encode(Nb201Arch.from_string(row["arch"])),
                                  self.radix))
                self.accuracy[code] = float(row[accuracy_column])
                self.latency[code] = float(row[latency_column])
        missing = int(np.isnan(self.accuracy).sum() + np.isnan(self.latency).sum())
        if missing:
            raise ValueError(f"{path}: {missing} cells missing (expected all {n} architectures)")
        self.path, self.accuracy_column, self.latency_column = path, accuracy_column, latency_column

    def evaluate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = np.asarray(rows, dtype=np.int64) @ self.radix
        return self.accuracy[codes], self.latency[codes]

    def task(self, percentile: float, reward: str) -> Task:
        target = float(np.percentile(self.latency, percentile))
        device = self.latency_column.removeprefix("latency_ms_")
        task = Task(f"nb201-{device}-p{percentile:g}-{reward}", self.space, self.evaluate,
                    target, reward)
        rewards = task.score(self.accuracy, self.latency)
        best = int(np.argmax(rewards))
        task.optimum = float(rewards[best])
        task.info = {"table": str(self.path), "accuracy_column": self.accuracy_column,
                     "latency_column": self.latency_column, "percentile": percentile,
                     "optimum_arch": self.space.decode(self._actions(best)).to_string(),
                     "optimum_accuracy": float(self.accuracy[best]),
                     "optimum_latency_ms": float(self.latency[best]),
                     "qualifying": int((self.latency <= target).sum())}
        return task

    def _actions(self, code: int) -> list[int]:
        return [int(code // r % d.size) for r, d in zip(self.radix, self.space.decisions)]
