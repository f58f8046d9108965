"""The search loop: the controller samples, executors train children, rewards flow back.

`Search` holds the state explicitly and is driven by ask/tell, so it runs the same whether
children are trained in-process (`LocalExecutor`) or on a Ray pool (`mnas.search.ray_pool`). The
history file is authoritative: every finished child is appended (fsync'd) before anything else
changes, the controller checkpoint is replaced atomically after every event, and a resume
reconciles the two, so a SIGKILL at any instant loses no finished child and retrains none.

Budget semantics: `budget.children` counts history records, including failed children and
`cached` repeats (an architecture sampled again is not retrained; its earlier result is recorded
again with `cached: true` and its reward goes to the controller again, because the controller did
spend a sample on it). The controller is updated every `budget.batch` rewards, in arrival order.
The last trials of a run (up to twice the executor's capacity) are sampled together and trained
longest first, so the run does not end with one worker busy and the rest idle.
"""
from __future__ import annotations

import math
import numbers
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Protocol, Sequence

import numpy as np

from controllers.base import Controller, Sample
from search_spaces.interface import Arch, SearchSpace

from mnas.search.checkpoint import CheckpointState, load_checkpoint, sample_from_dict, \
    sample_to_dict, save_checkpoint
from mnas.search.executor import Executor, Outcome
from mnas.search.history import HistoryRecord, HistoryWriter, load_history
from mnas.search.ranking import Candidate, best, candidates
from mnas.search.rundir import RunDir
from mnas.reward import RewardSpec


class SearchTracker(Protocol):
    """What the loop reports as it goes (`mnas.tracking.Tracker`: TensorBoard and the plot)."""

    def seed(self, records: Sequence[HistoryRecord], /) -> None: ...

    def log_child(self, record: HistoryRecord, step: int, /) -> None: ...

    def log_update(self, stats: dict[str, Any], actions: Sequence[Sequence[int]],
                   step: int, /) -> None: ...

    def close(self, records: Sequence[HistoryRecord], /) -> None: ...


@dataclass(frozen=True)
class Trial(Generic[Arch]):
    """One sampled child: its position in sample order, actions, architecture and the
    controller's sample (kept for the update)."""

    index: int
    actions: tuple[int, ...]
    arch: tuple[str, ...]
    spec: Arch = field(compare=False, repr=False)
    sample: Sample = field(compare=False, repr=False)


@dataclass(frozen=True)
class SearchSummary:
    """What `Search.run` reports at the end."""

    children: int
    best: Candidate | None
    wall_time_s: float


class Search(Generic[Arch]):
    """Explicit search state (ask/tell). `latency` maps an architecture to milliseconds."""

    def __init__(self, run_dir: str | Path, *, space: SearchSpace[Arch], controller: Controller,
                 latency: Callable[[Arch], float], reward: RewardSpec, children: int,
                 batch: int, resume: bool = False, tracker: SearchTracker | None = None,
                 latency_name: str | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        if children < 1 or batch < 1:
            raise ValueError(f"budget: children and batch must be >= 1, got {children}, {batch}")
        self.run_dir = Path(run_dir)
        self.space, self.controller, self.reward = space, controller, reward
        self._latency_fn = latency
        self._latency_name = latency_name or getattr(latency, "__qualname__", repr(latency))
        self._latency_memo: dict[tuple[str, ...], float | str] = {}
        self.log = log if log is not None else _log_stderr
        self.skipped_updates = 0
        self.children, self.batch, self.tracker = children, batch, tracker
        self.records: list[HistoryRecord] = []
        self._best: Candidate | None = None
        self._cache: dict[tuple[str, ...], dict[str, Any]] = {}
        self._in_flight: dict[int, Trial[Arch]] = {}
        self._running: dict[tuple[str, ...], int] = {}  # arch -> index of the trial training it
        self._waiting: dict[tuple[str, ...], list[Trial[Arch]]] = {}  # repeats of a running arch
        self._requeue: list[Trial[Arch]] = []
        self._tail: list[Trial[Arch]] = []  # the run's last trials, longest first (see `_refill`)
        self._pending: list[tuple[Trial[Arch], float]] = []
        self._batched = False  # inside `tell_many`: one fsync and checkpoint for the batch
        self.next_index = 0
        self.updates = 0
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
            if tracker is not None:
                tracker.seed(self.records)
        self._history = HistoryWriter(RunDir(self.run_dir).history)

    # -- state --------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return len(self.records) >= self.children

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def best(self) -> Candidate | None:
        """The best child so far (`mnas.search.ranking.best`)."""
        return self._best

    @property
    def _askable(self) -> int:
        """How many trials `ask` can still hand out: the budget not yet recorded or in flight,
        plus the re-queued trials (in flight but not running)."""
        return self.children - len(self.records) - len(self._in_flight) + len(self._requeue)

    def latency(self, spec: Arch, key: tuple[str, ...]) -> float:
        """Predicted latency (ms) of a child; ValueError naming the predictor and the value when
        it is not a finite number > 0 or the predictor raised (see `latency_error`)."""
        value = self._predict(spec, key)
        if isinstance(value, str):
            raise ValueError(value)
        return value

    def latency_error(self, spec: Arch, key: tuple[str, ...]) -> str | None:
        """Why this child's latency cannot be used (None when it can)."""
        value = self._predict(spec, key)
        return value if isinstance(value, str) else None

    def _predict(self, spec: Arch, key: tuple[str, ...]) -> float | str:
        """The memoised prediction, or the error text for an unusable one: a search asks the
        predictor once per architecture, before the child is trained."""
        if key not in self._latency_memo:
            name = self._latency_name
            try:
                value = self._latency_fn(spec)
            except Exception as exc:  # noqa: BLE001 - user predictors: the child fails, not us
                text = str(exc).splitlines()[0] if str(exc) else ""
                self._latency_memo[key] = (f"latency: predictor {name!r} raised "
                                           f"{type(exc).__name__}: {text}")
            else:
                self._latency_memo[key] = _checked_latency(value, name)
        return self._latency_memo[key]

    # -- ask / tell ---------------------------------------------------------------------------
    def ask(self, n: int) -> list[Trial[Arch]]:
        """Up to `n` trials to train. Trials re-queued by a resume come first; repeats of a known
        architecture are recorded as cached at once and never returned."""
        n = max(0, min(n, self._askable))
        trials = self._requeue[:n]
        self._requeue = self._requeue[n:]
        new = [self._make_trial(s) for s in self.controller.sample(n - len(trials))] \
            if n > len(trials) else []
        for trial in new:
            self._in_flight[trial.index] = trial
        if new:
            self._checkpoint()  # in flight before anything about them can reach the history
        to_run = []
        with self._durable_batch():
            for trial in trials + new:
                error = self.latency_error(trial.spec, trial.arch)
                if error is not None and trial.arch not in self._cache:
                    # priced before training: a child without a usable latency is never trained
                    self._cache[trial.arch] = _latency_failure(error)
                    self._finish(trial, dict(self._cache[trial.arch]), cached=False)
                elif trial.arch in self._cache:
                    self._finish(trial, dict(self._cache[trial.arch]), cached=True)
                elif trial.arch in self._running:
                    self._waiting.setdefault(trial.arch, []).append(trial)
                else:
                    self._running[trial.arch] = trial.index
                    to_run.append(trial)
        return to_run

    def tell(self, trial: Trial[Arch], outcome: Outcome) -> HistoryRecord:
        """Record a finished trial (and any repeats waiting for it); returns its record."""
        if self._in_flight.get(trial.index) is not trial:
            raise ValueError(f"tell: trial {trial.index} is not in flight")
        self._running.pop(trial.arch, None)
        fields_ = _result_fields(outcome)
        record = self._finish(trial, fields_, cached=False)
        self._cache[trial.arch] = fields_
        for repeat in self._waiting.pop(trial.arch, []):
            self._finish(repeat, dict(fields_), cached=True)
        return record

    def tell_many(self, finished: list[tuple[Trial[Arch], Outcome]]) -> list[HistoryRecord]:
        """`tell` each finished trial, made durable together (see `_durable_batch`)."""
        with self._durable_batch():
            return [self.tell(trial, outcome) for trial, outcome in finished]

    @contextmanager
    def _durable_batch(self) -> Iterator[None]:
        """Records finished inside are flushed one by one but fsync'd and checkpointed once at
        the end: what keeps a 10,000-child table search at seconds. A crash inside the batch is
        what a resume already handles: the checkpoint still has the batch in flight, and those
        that reached the history are rewarded from it."""
        before = len(self.records)
        self._batched = self._history.defer_sync = True
        try:
            yield
        finally:
            self._batched = self._history.defer_sync = False
        if len(self.records) > before:
            self._history.sync()
            self._checkpoint()

    def _make_trial(self, sample: Sample) -> Trial[Arch]:
        actions = tuple(int(a) for a in sample.actions)
        spec = self.space.decode(actions)
        trial = Trial(self.next_index, actions, tuple(self.space.to_strings(spec)), spec, sample)
        self.next_index += 1
        return trial

    def _finish(self, trial: Trial[Arch], fields_: dict[str, Any], *,
                cached: bool) -> HistoryRecord:
        predicted = self._predict(trial.spec, trial.arch)
        latency = None if isinstance(predicted, str) else predicted
        reward = self.reward.score(fields_["status"], fields_.get("accuracy"), latency)
        if cached:
            fields_.update(train_time_s=0.0, wall_time_s=0.0, worker=None, attempts=0)
        record = HistoryRecord(index=trial.index, arch=trial.arch, actions=trial.actions,
                               latency_ms=latency, reward=reward, cached=cached, **fields_)
        # durable first: the history is authoritative
        self._history.append(record)
        self.records.append(record)
        self._best = best(candidates([record]) + ([self._best] if self._best else []))
        del self._in_flight[trial.index]
        self._pending.append((trial, reward))
        update = self._maybe_update()
        if not self._batched:
            self._checkpoint()
        if self.tracker is not None:
            self.tracker.log_child(record, len(self.records))
            if update is not None:
                self.tracker.log_update(update[0], [t.actions for t, _ in update[1]],
                                        self.updates)
        return record

    def _maybe_update(self) -> tuple[dict[str, Any], list[tuple[Trial[Arch], float]]] | None:
        """Update the controller once a full batch of rewards has arrived (arrival order)."""
        if len(self._pending) < self.batch:
            return None
        batch, self._pending = self._pending[:self.batch], self._pending[self.batch:]
        rewards = [r for _, r in batch]
        if all(math.isfinite(r) for r in rewards):
            stats = dict(self.controller.update([t.sample for t, _ in batch], rewards))
        else:
            stats = {"skipped": 1.0, "skip_reason": "non-finite reward"}
        self.updates += 1
        if stats.get("skipped"):
            # the controller kept its weights (never non-finite ones): say so, go on
            self.skipped_updates += 1
            self.log(f"mnas search: warning: controller update {self.updates} skipped "
                     f"({stats.get('skip_reason', 'non-finite update')}; rewards "
                     f"{min(rewards):.3g} to {max(rewards):.3g}); the controller keeps its "
                     f"previous weights")
            stats["skipped_total"] = float(self.skipped_updates)
        return stats, batch

    # -- persistence --------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        state = CheckpointState(
            controller=self.controller.state_dict(), next_index=self.next_index,
            updates=self.updates,
            in_flight=[_trial_dict(t) for t in self._in_flight.values()],
            pending=[{**_trial_dict(t), "reward": r} for t, r in self._pending])
        save_checkpoint(self.run_dir, state)

    def _resume(self) -> None:
        """History first (torn last line cut), then the checkpoint; trials the checkpoint had in
        flight that reached the history are rewarded now, the rest are re-queued."""
        self.records = load_history(RunDir(self.run_dir).history, repair=True)
        self._best = best(candidates(self.records))
        for record in self.records:
            self._cache.setdefault(record.arch, _cached_fields(record))
        state = load_checkpoint(self.run_dir)
        done = {r.index: r for r in self.records}
        self.next_index = max(done, default=-1) + 1
        if state is None:
            return
        try:
            self.controller.load_state_dict(state.controller)
            pending = [(self._trial_from(d), float(d["reward"])) for d in state.pending]
            in_flight = [self._trial_from(d)
                         for d in sorted(state.in_flight, key=lambda d: int(d["index"]))]
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            # only after `--force` with another controller or search space
            raise ValueError(f"{RunDir(self.run_dir).checkpoint}: does not fit this config's "
                             f"controller or search space ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        self.next_index = max(self.next_index, state.next_index)
        self.updates = state.updates
        self._pending = pending
        for trial in in_flight:
            if trial.index in done:
                reward = done[trial.index].reward
                self._pending.append((trial, float(self.reward.failed_reward if reward is None
                                                   else reward)))
            else:
                self._in_flight[trial.index] = trial
                self._requeue.append(trial)
        room = max(0, self.children - len(self.records))
        for trial in self._requeue[room:]:  # budget lowered below what was in flight
            del self._in_flight[trial.index]
        self._requeue = self._requeue[:room]
        while self._maybe_update() is not None:
            pass

    def _trial_from(self, data: dict[str, Any]) -> Trial[Arch]:
        sample = sample_from_dict(Sample, data["sample"])
        actions = tuple(int(a) for a in sample.actions)
        spec = self.space.decode(actions)
        return Trial(int(data["index"]), actions, tuple(self.space.to_strings(spec)), spec,
                     sample)

    def close(self) -> None:
        self._history.close()
        if self.tracker is not None:
            self.tracker.close(self.records)

    # -- driving ------------------------------------------------------------------------------
    def run(self, executor: Executor, *, progress: bool = True) -> SearchSummary:
        """Keep every executor slot busy until the budget is recorded. Ctrl-C / SIGTERM
        (delivered as KeyboardInterrupt / SystemExit by the caller) leave a resumable run dir."""
        from mnas.progress import Progress

        start = time.perf_counter()
        bar = Progress(self.children, len(self.records), enabled=progress)
        running = 0
        try:
            while not self.done:
                before = len(self.records)
                for trial in self._refill(executor.capacity, running):
                    executor.submit(trial)
                    running += 1
                bar.update(len(self.records), running, self.best)
                if running == 0:
                    if len(self.records) == before and not self.done:
                        raise RuntimeError("search stalled: nothing to run and nothing recorded")
                    continue
                finished = executor.wait()
                running -= len(finished)
                self.tell_many(finished)
            bar.update(len(self.records), running, self.best)  # the refill above shows the rest
        finally:
            bar.close()
        return SearchSummary(len(self.records), self.best, time.perf_counter() - start)

    def _refill(self, capacity: int, running: int) -> list[Trial[Arch]]:
        """Trials for the free slots. Near the end (when what is left to sample fits in the slots
        and one more round of them) all of it is sampled at once and handed out longest expected
        first, by predicted latency: the run then ends on short children instead of one worker
        training a long child while the others idle."""
        free, left = capacity - running, self._askable
        if capacity > 1 and left > 0 and running + len(self._tail) + left <= 2 * capacity:
            self._tail += self.ask(left)
            self._tail.sort(key=lambda t: -self.latency(t.spec, t.arch))
        out, self._tail = self._tail[:free], self._tail[free:]
        return out + self.ask(free - len(out)) if len(out) < free else out


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _checked_latency(value: Any, name: str | None) -> float | str:
    """`value` as milliseconds, or the error text when it is not a finite number > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.ndarray)) \
            or (isinstance(value, np.ndarray) and value.size != 1):
        return f"latency: predictor {name!r} returned {value!r}, not a number of milliseconds"
    ms = float(value)
    if not math.isfinite(ms) or ms <= 0:
        return f"latency: predictor {name!r} returned {ms!r} ms (expected a finite number > 0)"
    return ms


def _latency_failure(error: str) -> dict[str, Any]:
    """The result fields of a child refused for its latency (it was not trained)."""
    return {"status": "failed", "accuracy": None, "params": None, "macs": None, "error": error,
            "train_time_s": None, "wall_time_s": 0.0, "worker": None, "attempts": 0}


def _trial_dict(trial: Trial[Arch]) -> dict[str, Any]:
    return {"index": trial.index, "sample": sample_to_dict(trial.sample)}


#: What a trainer's result dict contributes to a history record, under the same names.
_RESULT_KEYS = ("status", "accuracy", "params", "macs", "error", "train_loss", "epochs",
                "images_per_s")
#: The record fields that describe the training run (copied to a cached repeat).
_RUN_KEYS = _RESULT_KEYS + ("train_time_s", "wall_time_s", "worker", "attempts")


def _result_fields(outcome: Outcome) -> dict[str, Any]:
    result = outcome.result
    fields_ = {k: result.get(k) for k in _RESULT_KEYS}
    fields_["status"] = str(fields_["status"] or "failed")
    fields_.update(train_time_s=result.get("wall_time_s"), wall_time_s=outcome.wall_time_s,
                   worker=outcome.worker, attempts=outcome.attempts)
    return fields_


def _cached_fields(record: HistoryRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in _RUN_KEYS}

