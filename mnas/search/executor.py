"""Executors run children for the search loop: the loop only submits trials and waits for outcomes.

`LocalExecutor` trains in the driver process, one child at a time (tests, `ray.workers: 1`,
debugging with pdb); `mnas.search.ray_pool.RayExecutor` keeps a pool of Ray actors busy. Both hand
back the same `Outcome`, so the loop cannot tell them apart.
"""
from __future__ import annotations

import importlib
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

#: Default child trainer, by dotted path so worker processes import it themselves.
DEFAULT_TRAINER = "mnas.training.trainer:train_child"

Trainer = Callable[..., Any]

#: Errors that mean the configuration or data is wrong, not the child: they stop the search.
FATAL_ERRORS: tuple[type[Exception], ...] = (ValueError, FileNotFoundError)


def failure_result(status: str, error: str) -> dict[str, Any]:
    """The result dict of a child that produced none itself (an exception, a lost worker, a
    timeout): the same keys a `ChildResult.to_dict()` has that the history keeps."""
    return {"status": status, "error": error, "accuracy": None, "params": None, "macs": None,
            "wall_time_s": None}


@dataclass(frozen=True)
class Outcome:
    """What running one trial produced. `result` is `ChildResult.to_dict()` (or an equivalent
    dict for failures the worker could not report itself); `wall_time_s` is measured by the
    executor from dispatch to result, so it includes queueing, retries and transfer."""

    result: dict[str, Any]
    worker: str
    attempts: int
    wall_time_s: float

    @classmethod
    def failure(cls, status: str, error: str, *, worker: str, attempts: int,
                wall_time_s: float) -> "Outcome":
        return cls(failure_result(status, error), worker, attempts, wall_time_s)


class Executor(Protocol):
    """Runs trials concurrently; `capacity` is how many it can run at once."""

    capacity: int

    def submit(self, trial: Any) -> None: ...

    def wait(self) -> list[tuple[Any, Outcome]]:
        """Block until at least one submitted trial has finished; return all finished ones."""

    def shutdown(self) -> None: ...


def resolve_trainer(trainer: str | Trainer | None) -> Trainer:
    """A trainer callable from a dotted path ("pkg.module:name") or a callable."""
    if trainer is None:
        trainer = DEFAULT_TRAINER
    if callable(trainer):
        return trainer
    module, sep, name = str(trainer).partition(":")
    if not sep or not module or not name:
        raise ValueError(f"trainer {trainer!r}: expected a dotted path 'pkg.module:function'")
    return getattr(importlib.import_module(module), name)


def run_child(trainer: Trainer, arch: Any, train_config: Any,
              num_classes: int | None) -> dict[str, Any]:
    """Train one child and return its result as a dict; an exception becomes status "failed"
    (a broken architecture must not stop a search). ValueError / FileNotFoundError are bad
    configuration or data (every child would fail alike): they propagate and stop the search."""
    try:
        result = trainer(arch, train_config, num_classes=num_classes)
        return dict(result.to_dict() if hasattr(result, "to_dict") else result)
    except FATAL_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the history, search goes on
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return failure_result("failed", last)


class LocalExecutor:
    """Trains children one by one in this process when the loop waits: no parallelism, no
    timeouts beyond the trainer's own `time_limit_s`, no retries (an exception is a failed
    child), no Ray start-up."""

    capacity = 1

    def __init__(self, train_config: Any, *, num_classes: int | None = None,
                 trainer: str | Trainer | None = None) -> None:
        self.train_config = train_config
        self.num_classes = num_classes
        self.trainer = resolve_trainer(trainer)
        self._queue: deque[Any] = deque()

    def submit(self, trial: Any) -> None:
        self._queue.append(trial)

    def wait(self) -> list[tuple[Any, Outcome]]:
        if not self._queue:
            raise RuntimeError("wait() with nothing submitted")
        trial = self._queue.popleft()
        start = time.perf_counter()
        result = run_child(self.trainer, trial.spec, self.train_config, self.num_classes)
        return [(trial, Outcome(result, "local", 1, time.perf_counter() - start))]

    def shutdown(self) -> None:
        self._queue.clear()
