"""Children trained in parallel on Ray: a pool of long-lived actors with our own retries.

Why actors and not Ray Tune: a worker pays its start-up once (torch import, torch threads, the
data set loaded and cached in memory) and then trains child after child; the search's own history
and controller checkpoint stay the only state (Tune's experiment state is written every >= 10 s
and its restore does not own our controller), so a SIGKILL loses nothing that the history does not
already hold. Retries, timeouts and dead nodes are handled here, explicitly:

- a worker that dies mid-child (crash, OOM kill, node removed) is replaced and the child re-run,
  up to `ray.retries` times, then recorded as failed;
- a child over `ray.child_timeout_s` has its actor killed and is recorded as "timeout";
- a replacement actor is only started when the cluster has a free `cpus_per_child` (and
  `gpus_per_child`), so a pool shrinks with the cluster instead of waiting on an actor that can
  never be placed;
- with `gpus_per_child` > 0 each actor asks Ray for that share of a GPU (0.5 packs two per GPU),
  the pool never holds more actors than the cluster's GPUs can place, and each actor trains on
  the GPU Ray assigned it (`ray.get_gpu_ids()`).

This is the only module that imports ray (`mnas.tune` imports ray.tune for Tune users).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mnas.search.executor import (FATAL_ERRORS, Outcome, Trainer, oom_reason, resolve_trainer,
                                  run_child)
from mnas.training.device import ray_assigned_device

if TYPE_CHECKING:
    from mnas.search.loop import Trial
    from mnas.training.trainer import TrainConfig

OBJECT_STORE_BYTES = 200 * 1024 ** 2


def init_ray(address: str | None = None, *, num_cpus: int | None = None,
             num_gpus: int | None = None) -> float:
    """Start (or connect to) Ray lightly: no dashboard, no usage stats, worker logs not
    forwarded, a small object store. Returns the seconds it took (0 if already running)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return 0.0
    start = time.perf_counter()
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                  logging_level=logging.ERROR)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                 object_store_memory=OBJECT_STORE_BYTES, **kwargs)
    return time.perf_counter() - start


class ChildWorker:
    """Lives in a Ray worker process: sets torch threads and loads the data once, then trains
    children one after another, on the GPU Ray assigned it (if any)."""

    def __init__(self, trainer: str | Trainer | None, train_config: TrainConfig,
                 num_classes: int | None, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        import ray

        self.trainer = resolve_trainer(trainer)
        self.gpu_ids = assigned_gpu_ids()
        self.train_config = assign_device(train_config, self.gpu_ids)
        self.num_classes = num_classes
        node = ray.get_runtime_context().get_node_id()[:8]
        gpus = f"/gpu{','.join(self.gpu_ids)}" if self.gpu_ids else ""
        self.name = f"{node}/pid{os.getpid()}{gpus}"

    def warmup(self) -> str:
        """Load the data set into this process's cache, or let the trainer prepare itself (its
        `warmup(train_config)`, e.g. the supernet built once), so errors surface before any
        child."""
        data = getattr(self.train_config, "data", None)
        prepare = getattr(self.trainer, "warmup", None)
        if callable(prepare):
            prepare(self.train_config)
        elif data is not None and self.trainer is resolve_trainer(None):
            from mnas.training.data import load_dataset

            load_dataset(data)
        return self.name

    def run(self, arch: Any) -> dict[str, Any]:
        result = run_child(self.trainer, arch, self.train_config, self.num_classes)
        result["_worker"] = self.name
        return result


def assigned_gpu_ids() -> list[str]:
    """The GPU ids Ray assigned the calling actor or Tune trial ([] outside Ray or without GPUs)."""
    import ray

    return [str(i) for i in ray.get_gpu_ids()] if ray.is_initialized() else []


def assign_device(train_config: Any, gpu_ids: list[str]) -> Any:
    """The config an actor trains with: `child_training.device` auto/cuda/cuda:N becomes the GPU
    Ray assigned this actor, or the CPU when it was assigned none (an actor must not use a GPU
    Ray did not give it); "cpu" stays. Configs without a device field pass through."""
    fields = {f.name for f in dataclasses.fields(train_config)} \
        if dataclasses.is_dataclass(train_config) else set()
    if "device" not in fields or train_config.device == "cpu":
        return train_config
    return dataclasses.replace(train_config, device=ray_assigned_device(gpu_ids))


@dataclass
class _Running:
    slot: int
    trial: Trial[Any]
    attempts: int
    started: float
    dispatched: float


#: How long a replacement actor may take to start and warm up before its slot is retried later.
ACTOR_STARTUP_TIMEOUT_S = 300.0


class RayExecutor:
    """Keeps `capacity` actors busy. `workers` 0 = one per `cpus_per_child` CPUs of the cluster;
    with `gpus_per_child` > 0, never more than the cluster's GPUs can place."""

    def __init__(self, train_config: TrainConfig, *, num_classes: int | None = None,
                 trainer: str | Trainer | None = None, address: str | None = None,
                 workers: int = 0, cpus_per_child: float = 1.0, retries: int = 2,
                 child_timeout_s: float | None = None, num_cpus: int | None = None,
                 gpus_per_child: float = 0.0, num_gpus: int | None = None) -> None:
        import ray

        self.init_seconds = init_ray(address, num_cpus=num_cpus, num_gpus=num_gpus)
        self._ray = ray
        resources = ray.cluster_resources()
        self.capacity = pool_capacity(workers, float(resources.get("CPU", 1.0)), cpus_per_child,
                                      float(resources.get("GPU", 0.0)), gpus_per_child)
        self.cpus_per_child, self.retries, self.timeout = cpus_per_child, retries, child_timeout_s
        self.gpus_per_child = gpus_per_child
        self._actor_cls = ray.remote(num_cpus=cpus_per_child, num_gpus=gpus_per_child,
                                     max_restarts=0)(ChildWorker)
        if trainer is not None and not isinstance(trainer, str):
            # once into the object store: every actor (replacements too) reads this one copy of
            # whatever the trainer carries (the supernet evaluator's weights)
            trainer = ray.put(trainer)
        self._args = (trainer, train_config, num_classes, max(1, int(round(cpus_per_child))))
        self._actors: dict[int, Any] = {}
        self._idle: deque[int] = deque(range(self.capacity))
        self._queue: deque[tuple[Trial[Any], int, float]] = deque()
        self._running: dict[Any, _Running] = {}
        self.replaced = 0
        start = time.perf_counter()
        for slot in range(self.capacity):
            self._actors[slot] = self._actor_cls.remote(*self._args)
        self._get([a.warmup.remote() for a in self._actors.values()])
        self.startup_seconds = time.perf_counter() - start

    def _get(self, refs: Any) -> Any:
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, FATAL_ERRORS):
                raise cause from None
            raise

    @property
    def running(self) -> int:
        return len(self._running) + len(self._queue)

    def submit(self, trial: Trial[Any]) -> None:
        self._queue.append((trial, 1, time.perf_counter()))
        self._dispatch()

    def _room_for_one(self) -> bool:
        free = self._ray.available_resources()
        return float(free.get("CPU", 0.0)) >= self.cpus_per_child \
            and float(free.get("GPU", 0.0)) + _EPS >= self.gpus_per_child

    def _dispatch(self) -> None:
        """Start queued trials on idle live actors; replace dead actors only where a CPU is free."""
        for slot in list(self._idle):
            if not self._queue:
                return
            if slot not in self._actors:
                if not self._room_for_one() or not self._replace_actor(slot):
                    continue
            self._idle.remove(slot)
            trial, attempts, dispatched = self._queue.popleft()
            ref = self._actors[slot].run.remote(trial.spec)
            self._running[ref] = _Running(slot, trial, attempts, time.perf_counter(), dispatched)

    def _replace_actor(self, slot: int) -> bool:
        """A new actor for `slot`, warmed up before it is given a child, so its start-up (a new
        process, imports, the data set: seconds, more on a loaded machine) never counts against
        the child's `child_timeout_s`. False when it does not come up; the slot stays idle."""
        ray = self._ray
        actor = self._actor_cls.remote(*self._args)
        ref = actor.warmup.remote()
        ready, _ = ray.wait([ref], num_returns=1, timeout=ACTOR_STARTUP_TIMEOUT_S)
        try:
            if not ready:
                raise TimeoutError
            self._get(ref)
        except (TimeoutError, ray.exceptions.RayActorError):
            ray.kill(actor, no_restart=True)
            return False
        self._actors[slot] = actor
        self.replaced += 1
        return True

    def _drop_actor(self, slot: int) -> None:
        actor = self._actors.pop(slot, None)
        if actor is not None:
            self._ray.kill(actor, no_restart=True)
        self._idle.append(slot)

    def _next_deadline(self) -> float | None:
        if self.timeout is None or not self._running:
            return None
        earliest = min(r.started for r in self._running.values())
        return max(0.0, earliest + self.timeout - time.perf_counter())

    def wait(self) -> list[tuple[Trial[Any], Outcome]]:
        if not self.running:
            raise RuntimeError("wait() with nothing submitted")
        while True:
            finished: list[tuple[Trial[Any], Outcome]] = []
            if self._running:
                wait_s = self._next_deadline()
                if self._queue:  # retry placement after a node loss frees up CPUs
                    wait_s = 1.0 if wait_s is None else min(wait_s, 1.0)
                ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=wait_s)
                if ready:
                    ready, _ = self._ray.wait(list(self._running), num_returns=len(self._running),
                                              timeout=0)
                for ref in ready:
                    finished.extend(self._collect(ref))
                finished.extend(self._expire())
            else:
                time.sleep(0.5)  # every actor died: wait for the cluster to offer a CPU
            self._dispatch()
            if finished:
                return finished

    def _collect(self, ref: Any) -> list[tuple[Trial[Any], Outcome]]:
        entry = self._running.pop(ref)
        ray = self._ray
        try:
            result = self._get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError, ray.exceptions.NodeDiedError,
                ray.exceptions.OutOfMemoryError) as exc:
            # Ray's memory monitor kills the worker of a child that outgrows the node
            # (OutOfMemoryError): retried like any dead worker, then recorded, never fatal
            self._drop_actor(entry.slot)
            if entry.attempts <= self.retries:
                self._queue.appendleft((entry.trial, entry.attempts + 1, entry.dispatched))
                return []
            error = f"worker died {entry.attempts} times ({type(exc).__name__})"
            if isinstance(exc, ray.exceptions.OutOfMemoryError):
                error = oom_reason(f"killed by Ray's memory monitor on each of "
                                   f"{entry.attempts} attempts")
            return [(entry.trial, Outcome.failure("failed", error, worker="-",
                                                  attempts=entry.attempts,
                                                  wall_time_s=self._since(entry.dispatched)))]
        except ray.exceptions.RayTaskError as exc:
            self._idle.append(entry.slot)
            error = str(exc).strip().splitlines()[-1]
            return [(entry.trial, Outcome.failure("failed", error, worker="-",
                                                  attempts=entry.attempts,
                                                  wall_time_s=self._since(entry.dispatched)))]
        self._idle.append(entry.slot)
        worker = str(result.pop("_worker", "ray"))
        return [(entry.trial, Outcome(result, worker, entry.attempts,
                                      self._since(entry.dispatched)))]

    def _expire(self) -> list[tuple[Trial[Any], Outcome]]:
        if self.timeout is None:
            return []
        now, out = time.perf_counter(), []
        for ref, entry in list(self._running.items()):
            if now - entry.started > self.timeout:
                del self._running[ref]
                self._drop_actor(entry.slot)
                error = f"child_timeout_s={self.timeout:g} exceeded"
                out.append((entry.trial, Outcome.failure("timeout", error, worker="-",
                                                         attempts=entry.attempts,
                                                         wall_time_s=now - entry.dispatched)))
        return out

    @staticmethod
    def _since(start: float) -> float:
        return time.perf_counter() - start

    def shutdown(self) -> None:
        """Kill the pool (in-flight children are in the checkpoint and re-run on resume)."""
        for slot in list(self._actors):
            actor = self._actors.pop(slot)
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
        self._running.clear()
        self._queue.clear()


_EPS = 1e-6  # Ray accounts fractional GPUs in 1e-4 units; 3 x 1/3 must still fit one GPU


def pool_capacity(workers: int, cpus: float, cpus_per_child: float, gpus: float,
                  gpus_per_child: float) -> int:
    """Actors the pool keeps: `workers`, or (0) one per `cpus_per_child`; with GPUs, capped at
    what the cluster's GPUs can place, since an actor Ray cannot place would wait forever.
    ValueError (naming the key) when the cluster has no GPU for even one child."""
    capacity = int(workers) or max(1, int(cpus // cpus_per_child))
    if gpus_per_child > 0:
        by_gpu = int((gpus + _EPS) // gpus_per_child)
        if by_gpu < 1:
            raise ValueError(f"ray.gpus_per_child: {gpus_per_child:g} GPU per child but the Ray "
                             f"cluster has {gpus:g} GPU(s)")
        capacity = min(capacity, by_gpu)
    return capacity


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
