"""One search on a yardstick task: any mnas controller, or Optuna's TPE sampler as the outside peer.

Controllers run in-process, ask/tell in batches exactly as `mnas search` drives them (sample a
batch, evaluate it, update with the observed rewards). The observed accuracy may carry seeded
Gaussian noise (`noise` accuracy points); the trace keeps the true values too, so the best found
architecture is the one with the highest *observed* reward, scored by its *true* reward.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from yardstick_tasks import ColumnLatency, Task

#: Bench name -> (controller name, options).
CONTROLLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "rnn-reinforce": ("rnn", {"algorithm": "reinforce"}),
    "rnn-ppo": ("rnn", {"algorithm": "ppo"}),
    # the risk-seeking advantages (controllers/rnn.py), the variant issue 14's tuning tried
    "rnn-reinforce-risk": ("rnn", {"algorithm": "reinforce", "advantage": "risk_seeking"}),
    "rnn-ppo-risk": ("rnn", {"algorithm": "ppo", "advantage": "risk_seeking"}),
    "random": ("random", {}),
    "constrained-random": ("constrained_random", {}),
    "evolution": ("evolution", {}),
}
PEERS = ("tpe",)
TPE_INSTALL = ("Optuna is a bench-only dependency: /work/main/.venv/bin/pip install "
               "-c constraints.txt optuna")


@dataclass
class Trace:
    """Per sample, in order: actions, true reward, observed reward, true accuracy, latency; per
    update the controller's statistics."""

    actions: np.ndarray
    reward: np.ndarray
    observed: np.ndarray
    accuracy: np.ndarray
    latency: np.ndarray
    stats: list[dict[str, float]]

    def best_at(self, budget: int) -> int:
        """Index of the sample a user would pick after `budget` samples (best observed)."""
        return int(np.argmax(self.observed[:budget]))


def _observe(task: Task, rows: np.ndarray, noise: float,
             rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    accuracy, latency = task.evaluate(rows)
    reward = task.score(accuracy, latency)
    if noise:
        seen = np.clip(accuracy + rng.normal(0.0, noise, size=accuracy.shape), 0.0, 100.0)
        observed = task.score(seen, latency)
    else:
        observed = reward
    return reward, observed, accuracy, latency


def _trace(parts: list[tuple[np.ndarray, ...]], stats: list[dict[str, float]]) -> Trace:
    """The per-batch (actions, reward, observed, accuracy, latency) rows joined into one trace."""
    actions, reward, observed, accuracy, latency = (np.concatenate(p) for p in zip(*parts))
    return Trace(actions, reward, observed, accuracy, latency, stats)


def run_controller(task: Task, name: str, *, seed: int, budget: int, batch: int,
                   noise: float = 0.0, options: dict[str, Any] | None = None) -> Trace:
    """`budget` samples from bench controller `name` (a key of CONTROLLERS), `batch` per update."""
    from controllers import create_controller

    kind, defaults = CONTROLLERS[name]
    controller = create_controller(kind, task.space, seed=seed,
                                   predictor=ColumnLatency(task),
                                   target_ms=task.target_ms, **{**defaults, **(options or {})})
    rng = np.random.default_rng([seed, 7919])
    parts: list[tuple[np.ndarray, ...]] = []
    stats: list[dict[str, float]] = []
    done = 0
    while done < budget:
        samples = controller.sample(min(batch, budget - done))
        rows = np.asarray([s.actions for s in samples], dtype=np.int64)
        values = _observe(task, rows, noise, rng)
        stats.append(controller.update(samples, values[1].tolist()))
        parts.append((rows, *values))
        done += len(samples)
    return _trace(parts, stats)


def run_tpe(task: Task, *, seed: int, budget: int, noise: float = 0.0) -> Trace:
    """Optuna's TPE sampler (defaults), one categorical parameter per decision, asked and told
    the same observed reward (maximised)."""
    try:
        import optuna
    except ImportError:
        raise SystemExit(f"tpe: optuna is not installed. {TPE_INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    decisions = [(f"d{i}", d.size) for i, d in enumerate(task.space.decisions)]
    rng = np.random.default_rng([seed, 7919])
    parts: list[tuple[np.ndarray, ...]] = []
    for _ in range(budget):
        trial = study.ask()
        row = np.asarray([[trial.suggest_categorical(n, list(range(k))) for n, k in decisions]])
        values = _observe(task, row, noise, rng)
        study.tell(trial, float(values[1][0]))
        parts.append((row, *values))
    return _trace(parts, [])


def run(task: Task, name: str, *, seed: int, budget: int, batch: int, noise: float = 0.0,
        options: dict[str, Any] | None = None) -> Trace:
    if name == "tpe":
        return run_tpe(task, seed=seed, budget=budget, noise=noise)
    return run_controller(task, name, seed=seed, budget=budget, batch=batch, noise=noise,
                          options=options)
