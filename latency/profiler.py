"""The one onnxruntime profiler (the only module that imports onnxruntime).

Timing on a shared 2-core machine is noisy (the same model 30 minutes apart differed by up to
1.6x here), so a measurement is: pin to one core (the idlest), create the session with the
deployment's options (graph optimisations on: the level alone changes latency 2.5-5x), warm up,
then several rounds of timed runs in that session; the statistic pools all runs and the spread is
the relative spread of the per-round statistics. Repeats minutes apart (the table's passes,
`validate`'s sweeps) are what catch slower drift; see `latency.build` and `latency.validate`.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np

import onnxruntime as ort

STATISTICS = ("median", "p25", "p10", "min", "mean")


@dataclass(frozen=True)
class ProfilerConfig:
    """How to time a graph. Defaults: CPU, one thread (the paper's single big core), batch 1,
    and the *minimum* of the timed runs: load from elsewhere only ever adds time, so under load
    it repeats far better than the median (32x32 networks timed twice here: Kendall tau 0.92 vs
    0.87), and on a quiet machine the two are alike (bench/results/latency*.json)."""

    provider: str = "CPUExecutionProvider"
    threads: int = 1
    warmup: int = 10
    runs: int = 30
    rounds: int = 3
    statistic: str = "min"
    pin: bool = True
    min_time_s: float = 0.0

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"latency.profiler.statistic: {self.statistic!r} is not one of "
                             f"{', '.join(STATISTICS)}")
        for name in ("threads", "runs", "rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"latency.profiler.{name}: expected a positive integer, "
                                 f"got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"latency.profiler.warmup: expected an integer >= 0, got "
                             f"{self.warmup!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "latency.profiler"
                  ) -> "ProfilerConfig":
        data = dict(data or {})
        known = set(cls.__dataclass_fields__)
        for key in data:
            if key not in known:
                raise ValueError(f"{where}.{key}: unknown key (expected one of "
                                 f"{', '.join(sorted(known))})")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """One graph's latency in ms (batch 1) and the relative spread of its per-round statistics."""

    ms: float
    spread: float
    rounds_ms: tuple[float, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"ms": self.ms, "spread": self.spread, "rounds_ms": list(self.rounds_ms)}


def statistic(times: np.ndarray, name: str) -> float:
    """The robust statistic of a set of run times."""
    if name == "median":
        return float(np.median(times))
    if name == "mean":
        return float(np.mean(times))
    if name == "min":
        return float(np.min(times))
    return float(np.percentile(times, {"p25": 25, "p10": 10}[name]))


def relative_spread(values: np.ndarray) -> float:
    """Coefficient of variation (std / mean) of a few repeated statistics; 0 for one value."""
    if len(values) < 2 or float(np.mean(values)) <= 0:
        return 0.0
    return float(np.std(values, ddof=1) / np.mean(values))


def onnxruntime_version() -> str:
    return ort.__version__


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_times(path: str = "/proc/stat") -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies since boot; empty where /proc/stat does not exist."""
    out: dict[int, tuple[int, int]] = {}
    try:
        with open(path) as fh:
            for line in fh:
                name, *fields = line.split() or [""]
                if name.startswith("cpu") and name[3:].isdigit():
                    ticks = [int(x) for x in fields[:8]]
                    out[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    except (OSError, ValueError):
        return {}
    return out


def idlest_cpu(cpus: set[int], window_s: float = 0.2) -> int:
    """The CPU of `cpus` least busy over the next `window_s` (ties: the last one), so a second
    profiler started beside a first one pins to the other core instead of sharing it."""
    before = cpu_times()
    time.sleep(window_s)
    after = cpu_times()

    def load(cpu: int) -> float:
        if cpu not in before or cpu not in after:
            return 0.0
        total = after[cpu][1] - before[cpu][1]
        return (after[cpu][0] - before[cpu][0]) / total if total > 0 else 0.0

    return min(sorted(cpus), key=lambda c: (load(c), -c))


@contextmanager
def pinned(enabled: bool = True, cpu: int | None = None) -> Iterator[None]:
    """Pin this process to one CPU (`cpu`, else the last one allowed) for the duration;
    restores the previous mask. No-op where sched_setaffinity does not exist."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cpu if cpu in before else max(before)})
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Profiler:
    """Times serialized ONNX graphs with onnxruntime under one fixed `ProfilerConfig`."""

    def __init__(self, config: ProfilerConfig | None = None) -> None:
        self.config = config or ProfilerConfig()
        self._cpu: int | None = None
        if self.config.provider not in available_providers():
            raise ValueError(f"latency.profiler.provider: {self.config.provider!r} is not "
                             f"available here (available: {', '.join(available_providers())})")

    def _pinned(self) -> Any:
        """Pinned to one CPU (one-thread timing only): the one allowed, or the idlest when
        several are, chosen once on first use (a `taskset -c N` choice is kept)."""
        enabled = self.config.pin and self.config.threads == 1
        if enabled and self._cpu is None and hasattr(os, "sched_getaffinity"):
            allowed = os.sched_getaffinity(0)
            self._cpu = next(iter(allowed)) if len(allowed) == 1 else idlest_cpu(allowed)
        return pinned(enabled, self._cpu)

    def session_options(self, profile_path: str | None = None) -> "ort.SessionOptions":
        """The deployment's options: full graph optimisation, fixed thread count, sequential."""
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.config.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        if profile_path is not None:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_path
        return opts

    def _session(self, onnx_bytes: bytes, profile_path: str | None = None
                 ) -> "ort.InferenceSession":
        return ort.InferenceSession(onnx_bytes, sess_options=self.session_options(profile_path),
                                    providers=[self.config.provider])

    @staticmethod
    def _feed(session: "ort.InferenceSession") -> dict[str, np.ndarray]:
        inp = session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        return {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}

    def measure(self, onnx_bytes: bytes) -> Measurement:
        """Latency of one graph: warm-up, then `rounds` rounds of `runs` timed runs."""
        cfg = self.config
        with self._pinned():
            session = self._session(onnx_bytes)
            feed = self._feed(session)
            run = session.run
            for _ in range(cfg.warmup):
                run(None, feed)
            per_round, pooled = [], []
            for _ in range(cfg.rounds):
                times = _time_runs(run, feed, cfg.runs, cfg.min_time_s)
                per_round.append(statistic(times, cfg.statistic))
                pooled.append(times)
        all_times = np.concatenate(pooled)
        rounds = np.asarray(per_round)
        return Measurement(ms=statistic(all_times, cfg.statistic), spread=relative_spread(rounds),
                           rounds_ms=tuple(float(r) for r in rounds))

    def measure_many(self, graphs: list[bytes]) -> list[Measurement]:
        """Several graphs timed round-robin, so slow drift hits all of them alike."""
        cfg = self.config
        with self._pinned():
            sessions = [self._session(g) for g in graphs]
            feeds = [self._feed(s) for s in sessions]
            for s, f in zip(sessions, feeds):
                for _ in range(cfg.warmup):
                    s.run(None, f)
            per_round: list[list[float]] = [[] for _ in graphs]
            pooled: list[list[np.ndarray]] = [[] for _ in graphs]
            for _ in range(cfg.rounds):
                for i, (s, f) in enumerate(zip(sessions, feeds)):
                    times = _time_runs(s.run, f, cfg.runs, cfg.min_time_s)
                    per_round[i].append(statistic(times, cfg.statistic))
                    pooled[i].append(times)
        return [Measurement(ms=statistic(np.concatenate(p), cfg.statistic),
                            spread=relative_spread(np.asarray(r)),
                            rounds_ms=tuple(float(x) for x in r))
                for p, r in zip(pooled, per_round)]

    def node_profile(self, onnx_bytes: bytes, runs: int | None = None) -> dict[str, float]:
        """Median per-node kernel time (ms) over `runs` profiled runs, keyed by node name.

        onnxruntime's own profiler attributes time to the nodes of the *optimised* graph; fused
        nodes keep the name of their first source node, which is enough to map them to layers."""
        runs = runs or self.config.runs
        with tempfile.TemporaryDirectory() as tmp, self._pinned():
            session = self._session(onnx_bytes, profile_path=os.path.join(tmp, "prof"))
            feed = self._feed(session)
            for _ in range(self.config.warmup):
                session.run(None, feed)
            for _ in range(runs):
                session.run(None, feed)
            path = session.end_profiling()
            with open(path) as fh:
                events = json.load(fh)
        per_node: dict[str, list[float]] = {}
        for ev in events:
            if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
                name = ev["name"][: -len("_kernel_time")]
                per_node.setdefault(name, []).append(ev["dur"] / 1000.0)
        skip = self.config.warmup
        return {k: float(np.median(v[skip:] if len(v) > skip else v)) for k, v in
                per_node.items()}

    def provenance(self) -> dict[str, Any]:
        return {"onnxruntime": onnxruntime_version(), "provider": self.config.provider,
                "threads": self.config.threads, "cpu": cpu_model(), "batch": 1,
                "profiler": self.config.to_dict(), "pinned": self.config.pin and
                hasattr(os, "sched_setaffinity"),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _time_runs(run: Any, feed: dict[str, np.ndarray], runs: int, min_time_s: float
               ) -> np.ndarray:
    """`runs` timed runs in ms (more while under `min_time_s`, to average very fast graphs)."""
    out: list[float] = []
    clock = time.perf_counter_ns
    start = clock()
    while len(out) < runs or (clock() - start) / 1e9 < min_time_s:
        t0 = clock()
        run(None, feed)
        out.append((clock() - t0) / 1e6)
        if len(out) >= 20 * runs:
            break
    return np.asarray(out)
