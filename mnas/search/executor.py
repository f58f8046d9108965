"""Executors run children for the search loop: the loop only submits trials and waits for outcomes.

`LocalExecutor` trains in the driver process, one child at a time (tests, `ray.workers: 1`,
debugging with pdb); `mnas.search.ray_pool.RayExecutor` keeps a pool of Ray actors busy. Both hand
back the same `Outcome`, so the loop cannot tell them apart.
"""
from __future__ import annotations

import contextlib
import importlib
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

if TYPE_CHECKING:
    from mnas.evaluation import Evaluator
    from mnas.search.loop import Trial
    from mnas.training.trainer import TrainConfig

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

    def submit(self, trial: Trial[Any]) -> None: ...

    def wait(self) -> list[tuple[Trial[Any], Outcome]]:
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
    found: Trainer = getattr(importlib.import_module(module), name)
    return found


#: Marks of an allocation that failed (Python, numpy, torch's CPU allocator).
_OOM_TEXT = ("MemoryError", "can't allocate memory", "out of memory", "Cannot allocate memory")
#: Share of the memory available when a `--local` child starts that it may take (see
#: `memory_bounded`): the rest is left to the driver and the machine.
LOCAL_MEMORY_SHARE = 0.8


def oom_reason(detail: str) -> str:
    """The error text of a child that ran out of memory: always starts with "oom"."""
    return f"oom: the child ran out of memory ({detail})"


def _mark_oom(result: dict[str, Any]) -> dict[str, Any]:
    error = result.get("error")
    if result.get("status") == "failed" and isinstance(error, str) \
            and not error.startswith("oom") and any(t in error for t in _OOM_TEXT):
        result["error"] = oom_reason(error.splitlines()[0][:200])
    return result


def run_child(trainer: Trainer, arch: Any, train_config: TrainConfig | None,
              num_classes: int | None) -> dict[str, Any]:
    """Train one child and return its result as a dict; an exception becomes status "failed"
    (a broken architecture must not stop a search), an allocation that failed "failed" with an
    error starting "oom". ValueError / FileNotFoundError are bad configuration or data (every
    child would fail alike): they propagate and stop the search."""
    try:
        result = trainer(arch, train_config, num_classes=num_classes)
        return _mark_oom(dict(result.to_dict() if hasattr(result, "to_dict") else result))
    except FATAL_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the history, search goes on
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return _mark_oom(failure_result("failed", last))


def _meminfo_bytes(path: str, key: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


@contextlib.contextmanager
def memory_bounded(share: float = LOCAL_MEMORY_SHARE) -> Iterator[None]:
    """Cap this process's address space (soft RLIMIT_AS) at its current size plus `share` of
    the memory available now, for the block. Why: a `--local` child trains in the driver, and a
    child too big for the machine otherwise grows until the kernel's OOM killer ends the whole
    search (exit 137, the child in flight forever); under the cap its allocation fails instead,
    and the child is recorded failed ("oom"). A no-op where /proc or RLIMIT_AS is missing."""
    try:
        import resource
    except ImportError:  # not POSIX
        yield
        return
    available = _meminfo_bytes("/proc/meminfo", "MemAvailable")
    size = _meminfo_bytes("/proc/self/status", "VmSize")
    if available is None or size is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + int(available * share)
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            limit = min(limit, bound)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class LocalExecutor:
    """Trains children one by one in this process when the loop waits: no parallelism, no
    timeouts beyond the trainer's own `time_limit_s`, no retries (an exception is a failed
    child), no Ray start-up. Each child's memory is bounded (`memory_bounded`), so one too big
    for the machine fails alone ("oom") instead of getting the driver killed."""

    capacity = 1

    def __init__(self, train_config: TrainConfig | None, *, num_classes: int | None = None,
                 trainer: str | Trainer | None = None) -> None:
        self.train_config = train_config
        self.num_classes = num_classes
        self.trainer = resolve_trainer(trainer)
        self._queue: deque[Trial[Any]] = deque()

    def submit(self, trial: Trial[Any]) -> None:
        self._queue.append(trial)

    def wait(self) -> list[tuple[Trial[Any], Outcome]]:
        if not self._queue:
            raise RuntimeError("wait() with nothing submitted")
        trial = self._queue.popleft()
        start = time.perf_counter()
        with memory_bounded():
            result = run_child(self.trainer, trial.spec, self.train_config, self.num_classes)
        return [(trial, Outcome(result, "local", 1, time.perf_counter() - start))]

    def shutdown(self) -> None:
        self._queue.clear()


class EvaluatorExecutor(LocalExecutor):
    """Scores children with a cheap evaluator (table, predictor, your own) in this process:
    `capacity` trials are handed out at once and all scored when the loop waits. No Ray, no
    retries; an exception is a failed child, except ValueError / FileNotFoundError (bad
    configuration or data), which stop the search as they do for training."""

    def __init__(self, evaluator: Evaluator, *, capacity: int = 64) -> None:
        from mnas.evaluation import as_result

        if capacity < 1:
            raise ValueError(f"EvaluatorExecutor: capacity must be >= 1, got {capacity}")
        super().__init__(None, trainer=lambda arch, _config, num_classes=None: as_result(
            evaluator.evaluate(arch)).to_dict())
        self.capacity = int(capacity)

    def wait(self) -> list[tuple[Trial[Any], Outcome]]:
        out = super().wait()
        while self._queue:
            out += super().wait()
        return out
