"""Yardstick tasks: a search space whose every architecture's accuracy and latency are known.

A `Task` turns a batch of action rows into (accuracy, latency) arrays without training anything,
and scores them with the MnasNet reward. NAS-Bench-201 is a table: every one of its 15,625 cells
is looked up once, by its official string, into arrays indexed by the action row's mixed-radix
code, so a 2,000-sample search costs microseconds of lookups. Its optimum reward is exact (by
enumeration). A task without a known optimum (`optimum` None) is scored against the best reward
any run found.

OFA MobileNetV3 on a Samsung Note10 (`OfaTask`) is no table: accuracy is OFA's predictor MLP
(`mnas.evaluation.ofa_predictor`) and latency the sum of the Note10 per-layer tables
(`latency.layer_tables`, the `ofa_yaml` predictor). Scoring it per architecture through those
classes costs about 0.7 ms a sample, so the task vectorises both over a batch of action rows: the
features are built from the actions directly and fed to the library's MLP, and the latency is a
per-resolution constant plus one entry per active layer slot, each entry read from the library's
own table under the library's own key. `OfaTask.check` compares both against the library per
architecture (it runs whenever the task is built).
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
OFA_DIR = DATA / "ofa-note10"


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
    #: rows -> latency (ms) alone, where that is cheaper than `evaluate` (constrained random
    #: search prices many candidates per sample)
    latency: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.space.decisions)

    def score(self, accuracy: np.ndarray, latency: np.ndarray) -> np.ndarray:
        alpha, beta = REWARD_PRESETS[self.reward]
        return mnas_reward_many(accuracy, latency, target_ms=self.target_ms, alpha=alpha,
                                beta=beta)


class ColumnLatency:
    """A latency predictor for constrained random search: the task's own latency, looked up."""

    def __init__(self, task: Task) -> None:
        self.space = task.space
        self.latency = task.latency or (lambda rows: task.evaluate(rows)[1])

    def predict_many(self, archs: Sequence[Any]) -> np.ndarray:
        rows = np.asarray([self.space.encode(a) for a in archs], dtype=np.int64)
        return self.latency(rows)

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


def _ofa_tutorial() -> Any:
    from search_spaces.ofa import OfaArch

    return OfaArch(192, (2, 2, 3, 4, 3), (5, 3, 5, 3, 7, 7, 3, 5, 5, 7, 3, 3, 3, 5),
                   (3, 3, 4, 4, 6, 3, 4, 4, 4, 4, 3, 6, 6, 6))


class OfaTask:
    """OFA MobileNetV3 on a Note10: predicted ImageNet top-1 (%) and table latency (ms) of a batch
    of action rows of the default `ofa_mobilenetv3` space, vectorised (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        from latency.layer_tables import LayerTablePredictor
        from mnas.evaluation.ofa_predictor import OfaPredictorEvaluator
        from search_spaces.ofa import STAGE_WIDTHS, OfaArch, OfaMobileNetV3Space

        self.space = OfaMobileNetV3Space()
        self.folder = folder
        self.accuracy_model = OfaPredictorEvaluator(self.space, str(folder / "acc_predictor.npz"))
        self.latency_model = LayerTablePredictor(self.space, str(folder), fmt="ofa_yaml")
        self.stages, self.slots = len(STAGE_WIDTHS), self.space.max_depth
        kernels, expands, res = self.space.kernels, self.space.expands, self.space.resolutions
        # per resolution: the fixed layers; per (resolution, stage, slot, kernel, expand): the
        # slot's entry. A layer's key depends on these only (not on the depths), so the networks
        # with every stage at full depth and one kernel / expand ratio everywhere hold them all.
        self.fixed = np.zeros(len(res))
        self.slot_ms = np.zeros((len(res), self.stages, self.slots, len(kernels), len(expands)))
        n = self.stages * self.slots
        for r, resolution in enumerate(res):
            entries = self.latency_model.tables[resolution]
            for k, kernel in enumerate(kernels):
                for e, expand in enumerate(expands):
                    arch = OfaArch(resolution, (self.slots,) * self.stages, (kernel,) * n,
                                   (expand,) * n)
                    _, keys = self.latency_model.keys(arch)
                    layer_keys = keys[2:2 + n]  # after the stem and the fixed first layer
                    self.slot_ms[r, :, :, k, e] = np.reshape([entries[key] for key in layer_keys],
                                                             (self.stages, self.slots))
                    self.fixed[r] = sum(entries[key] for key in keys[:2] + keys[2 + n:])
        self.check(300)

    def _split(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        rows = np.asarray(rows, dtype=np.int64)
        per_stage = rows[:, :-1].reshape(len(rows), self.stages, 1 + 2 * self.slots)
        depth = np.asarray(self.space.depths)[per_stage[:, :, 0]]            # N x stages
        kernel = per_stage[:, :, 1::2]                                        # N x stages x slots
        expand = per_stage[:, :, 2::2]
        active = np.arange(self.slots)[None, None, :] < depth[:, :, None]
        return rows[:, -1], kernel, expand, active

    def evaluate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.accuracy(rows), self.latency(rows)

    def accuracy(self, rows: np.ndarray) -> np.ndarray:
        res, kernel, expand, active = self._split(rows)
        n = len(res)
        onehot = np.eye(3)
        # the predictor's layout: kernels (stage, slot, 3), expands (stage, slot, 3), resolution
        features = np.concatenate([
            (onehot[kernel] * active[..., None]).reshape(n, -1),
            (onehot[expand] * active[..., None]).reshape(n, -1),
            np.eye(8)[(np.asarray(self.space.resolutions)[res] - 112) // 16]], axis=1)
        return 100.0 * self.accuracy_model.predict(features)

    def latency(self, rows: np.ndarray) -> np.ndarray:
        res, kernel, expand, active = self._split(rows)
        s = np.arange(self.stages)[None, :, None]
        j = np.arange(self.slots)[None, None, :]
        per_slot = self.slot_ms[res[:, None, None], s, j, kernel, expand]
        latency: np.ndarray = self.fixed[res] + (per_slot * active).sum(axis=(1, 2))
        return latency

    def check(self, count: int, seed: int = 12345) -> float:
        """Largest difference (accuracy points or ms) between `evaluate` and the library's
        per-architecture evaluator and latency predictor on `count` random architectures;
        ValueError above 1e-6."""
        rng = np.random.default_rng(seed)
        rows = np.asarray([self.space.sample_actions(rng) for _ in range(count)])
        accuracy, latency = self.evaluate(rows)
        archs = [self.space.decode(list(r)) for r in rows]
        want_acc = 100.0 * np.asarray([self.accuracy_model.evaluate(a).accuracy for a in archs])
        want_lat = self.latency_model.predict_many(archs)
        worst = float(max(np.abs(accuracy - want_acc).max(), np.abs(latency - want_lat).max()))
        if worst > 1e-6:
            raise ValueError(f"OFA task: vectorised scores differ from the library's by {worst}")
        return worst

    def task(self, target_ms: float, reward: str) -> Task:
        """The search at `target_ms`; OFA's own tutorial result (found by its evolution in about
        50,000 predictor calls) is a floor for the reference reward regret is measured from."""
        task = Task(f"ofa-note10-{target_ms:g}ms-{reward}", self.space, self.evaluate, target_ms,
                    reward, None, latency=self.latency)
        tutorial = _ofa_tutorial()  # OFA's tutorial network: 81.71% at 24.73 ms (data README)
        accuracy, latency = self.score_arch(tutorial)
        task.info = {"folder": str(self.folder), "target_ms": target_ms,
                     "accuracy": "OFA's predictor (acc_predictor.npz), percent",
                     "latency": "sum of the Note10 per-layer tables (ofa_yaml)",
                     "tutorial": {"strings": tutorial.to_strings(), "accuracy": accuracy,
                                  "latency_ms": latency}}
        if latency <= target_ms:
            task.info["known_reward"] = float(task.score(np.array([accuracy]),
                                                         np.array([latency]))[0])
        return task

    def score_arch(self, arch: Any) -> tuple[float, float]:
        """(accuracy %, latency ms) of one `OfaArch` through the library (for reference points)."""
        accuracy = self.accuracy_model.evaluate(arch).accuracy
        if accuracy is None:
            raise ValueError(f"OFA task: the predictor gave no accuracy for {arch}")
        return 100.0 * float(accuracy), float(self.latency_model.predict(arch))
