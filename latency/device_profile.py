#!/usr/bin/env python3
"""Time an mnas device bundle on the device itself: needs only Python 3.8+, numpy and onnxruntime.

    python device_profile.py BUNDLE_DIR [--out RESULTS] [--provider P] [--threads N] ...

`mnas latency bundle CONFIG --out BUNDLE_DIR` writes the bundle (every distinct layer's ONNX, the
calibration, validation and canary networks, manifest.json) with this script beside it. Copy the
directory to the device, run the script (it resumes an interrupted run from its results file and
prints progress), copy the results file back and assemble the table on the host with
`mnas latency build CONFIG --from-bundle RESULTS --out table.json`.

This file is also the *one* timing procedure of mnas: `latency.profiler` imports its functions,
so a table timed here and one timed by `mnas latency build` are measured the same way. Timing on
a shared or throttling device is noisy, so a measurement is: pin to one core (the idlest), create
the session with the deployment's options (full graph optimisation, fixed threads, sequential),
warm up, then several rounds of timed runs in that session; the statistic pools all runs and the
spread is the relative spread of the per-round statistics. The schedule is the local build's
(`latency.build`): every layer in `passes` passes of its own random order, in chunks with the
canary network re-timed after each (a chunk is re-measured while the canary drifted more than
`drift_tol`), and the end-to-end samples spread between the chunks of every pass.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import onnxruntime as ort

T = TypeVar("T")

STATISTICS = ("median", "p25", "p10", "min", "mean")
RESULTS_FORMAT = "mnas-device-results"
BUNDLE_FORMAT = "mnas-device-bundle"
#: Kinds of graphs in a bundle: table entries, end-to-end samples, the drift canary.
ENTRY_KINDS = ("layer", "stem", "head")
SAMPLE_KINDS = ("calibration", "validation")


def onnxruntime_version() -> str:
    return str(ort.__version__)


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


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


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Hardware", "Processor")):
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


def choose_cpu(threads: int, pin: bool) -> int | None:
    """The CPU one-thread timing pins to: the one allowed (a `taskset -c N` choice is kept), or
    the idlest when several are; None when not pinning."""
    if not (pin and threads == 1 and hasattr(os, "sched_getaffinity")):
        return None
    allowed = os.sched_getaffinity(0)
    return next(iter(allowed)) if len(allowed) == 1 else idlest_cpu(allowed)


#: Canary timings taken before the first chunk: their median is the first reference, so one
#: cold or unlucky first timing cannot make every later chunk look drifted.
CANARY_START = 3


def start_canary(check_canary: Callable[[], float], timed: int) -> None:
    """Before the first chunk: time the canary until it has `CANARY_START` timings (at least
    once, so a resumed build also re-reads today's machine)."""
    for _ in range(max(1, CANARY_START - timed)):
        check_canary()


def canary_drift(earlier_ms: list[float], ms: float) -> float:
    """Today's canary timing over the median of all earlier ones (1.0 for the first). A running
    median, not the first timing: on a sub-millisecond canary the first timing alone was off by
    25-40% often enough that most chunks of a quiet build were re-timed for nothing."""
    earlier = [m for m in earlier_ms if m > 0]
    return ms / float(np.median(earlier)) if earlier else 1.0


def measure_watched(measure: Callable[[], list[T]], canary: Callable[[], float], drift_tol: float,
                    max_retries: int) -> tuple[list[T], float]:
    """`measure()` a chunk, then time the canary; when the canary is slower than usual by more
    than `drift_tol` (a burst of load from elsewhere), wait and re-measure the chunk, up to
    `max_retries` times. A *faster* canary is never a reason: load only slows a machine down, and
    on an idle 2-core VM a third of canary timings came out 25% fast, so a two-sided check
    re-timed (and slept on) 40% of a quiet build's chunks. Returns the results and the ratio."""
    for attempt in range(max_retries + 1):
        results = measure()
        ratio = canary()
        if ratio <= 1.0 + drift_tol or attempt == max_retries:
            break
        time.sleep(min(5.0, 1.0 + attempt))  # let a burst of load from elsewhere pass
    return results, ratio


def session_options(threads: int, profile_path: str | None = None) -> Any:
    """The deployment's options: full graph optimisation, fixed thread count, sequential."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if profile_path is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_path
    return opts


def make_session(graph: bytes | str, provider: str, threads: int,
                 profile_path: str | None = None) -> Any:
    """A session for serialized ONNX bytes or an .onnx path."""
    return ort.InferenceSession(graph, sess_options=session_options(threads, profile_path),
                                providers=[provider])


def make_feed(session: Any) -> dict[str, np.ndarray]:
    """A fixed random input (symbolic dimensions, e.g. a dynamic batch, become 1)."""
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    return {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}


def time_runs(run: Callable[..., Any], feed: dict[str, np.ndarray], runs: int,
              min_time_s: float) -> np.ndarray:
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


def time_sessions(sessions: list[Any], cfg: dict[str, Any]) -> list[tuple[float, float,
                                                                         list[float]]]:
    """The timing procedure: warm every session up, then `rounds` rounds of `runs` timed runs,
    round-robin over the sessions (slow drift hits all alike). Per session: (statistic of all
    runs in ms, relative spread of the per-round statistics, per-round statistics)."""
    feeds = [make_feed(s) for s in sessions]
    for s, f in zip(sessions, feeds):
        for _ in range(cfg["warmup"]):
            s.run(None, f)
    per_round: list[list[float]] = [[] for _ in sessions]
    pooled: list[list[np.ndarray]] = [[] for _ in sessions]
    for _ in range(cfg["rounds"]):
        for i, (s, f) in enumerate(zip(sessions, feeds)):
            times = time_runs(s.run, f, cfg["runs"], cfg.get("min_time_s", 0.0))
            per_round[i].append(statistic(times, cfg["statistic"]))
            pooled[i].append(times)
    return [(statistic(np.concatenate(p), cfg["statistic"]), relative_spread(np.asarray(r)),
             [float(x) for x in r]) for p, r in zip(pooled, per_round)]


# --- the bundle schedule (device side) ---------------------------------------------------------
def _atomic_json(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _Run:
    """One (resumable) timing run of a bundle; results are saved after every chunk."""

    def __init__(self, bundle: str, out: str, cfg: dict[str, Any], quiet: bool) -> None:
        with open(os.path.join(bundle, "manifest.json")) as fh:
            self.manifest = json.load(fh)
        if self.manifest.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"{bundle}/manifest.json: not an mnas device bundle")
        self.bundle, self.out, self.cfg, self.quiet = bundle, out, cfg, quiet
        self.build = self.manifest["build"]
        self.cpu = choose_cpu(cfg["threads"], cfg["pin"])
        self.provenance = {"onnxruntime": ort.__version__, "provider": cfg["provider"],
                           "threads": cfg["threads"], "cpu": cpu_model(), "batch": 1,
                           "profiler": cfg, "pinned": self.cpu is not None,
                           "python": platform.python_version(), "machine": platform.machine(),
                           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.graphs = {g["id"]: g for g in self.manifest["graphs"]}
        self.timed: dict[str, dict[str, Any]] = {}
        self.canary: list[dict[str, Any]] = []
        self.started, self.done, self.total = time.time(), 0, 0

    def resume(self) -> None:
        if not os.path.exists(self.out):
            return
        with open(self.out) as fh:
            old = json.load(fh)
        if old.get("bundle_id") != self.manifest["bundle_id"]:
            raise ValueError(f"{self.out}: results of another bundle (use another --out)")
        for key in ("onnxruntime", "provider", "threads", "cpu", "profiler"):
            if old["provenance"].get(key) != self.provenance.get(key):
                raise ValueError(f"{self.out}: cannot resume: {key} was "
                                 f"{old['provenance'].get(key)!r}, now "
                                 f"{self.provenance.get(key)!r} (use another --out)")
        self.timed, self.canary = old["timed"], old["canary"]
        self.provenance["date"] = old["provenance"]["date"]

    def save(self, complete: bool) -> None:
        _atomic_json(self.out, {
            "format": RESULTS_FORMAT, "version": 1, "bundle_id": self.manifest["bundle_id"],
            "space_fingerprint": self.manifest["space_fingerprint"], "complete": complete,
            "provenance": self.provenance, "build": self.build, "graphs": self.manifest["graphs"],
            "timed": self.timed, "canary": self.canary})

    def measure(self, ids: list[str]) -> list[tuple[float, float, list[float]]]:
        with pinned(self.cpu is not None, self.cpu):
            sessions = [make_session(os.path.join(self.bundle, self.graphs[i]["file"]),
                                     self.cfg["provider"], self.cfg["threads"]) for i in ids]
            return [time_sessions([s], self.cfg)[0] for s in sessions]

    def check_canary(self) -> float:
        canary = [g["id"] for g in self.manifest["graphs"] if g["kind"] == "canary"]
        if not canary:
            return 1.0
        ms = self.measure(canary)[0][0]
        ratio = canary_drift([c["ms"] for c in self.canary], ms)
        self.canary.append({"t": time.time(), "ms": ms, "ratio": ratio})
        return ratio

    def record(self, gid: str, result: tuple[float, float, list[float]], ratio: float) -> None:
        entry = self.timed.setdefault(gid, {"passes_ms": [], "spreads": []})
        entry["passes_ms"].append(result[0])
        entry["spreads"].append(result[1])
        entry["canary_ratio"] = ratio
        self.done += 1

    def measure_chunk(self, chunk: list[str]) -> None:
        results, ratio = measure_watched(lambda: self.measure(chunk), self.check_canary,
                                         self.build["drift_tol"], self.build["max_retries"])
        for gid, result in zip(chunk, results):
            self.record(gid, result, ratio)

    def passes_done(self, gid: str) -> int:
        return len(self.timed.get(gid, {}).get("passes_ms", []))

    def progress(self, p: int) -> None:
        if self.quiet or not self.total:
            return
        spent = time.time() - self.started
        eta = spent / max(1, self.done) * (self.total - self.done)
        print(f"pass {p + 1}/{self.build['passes']}: {self.done}/{self.total} graphs timed, "
              f"{spent / 60:.1f} min, about {eta / 60:.1f} min left", file=sys.stderr,
              flush=True)

    def run(self) -> None:
        self.resume()
        entries = [g["id"] for g in self.manifest["graphs"] if g["kind"] in ENTRY_KINDS]
        samples = [g["id"] for g in self.manifest["graphs"] if g["kind"] in SAMPLE_KINDS]
        passes, chunk, seed = self.build["passes"], self.build["chunk"], self.build["seed"]
        plan = []
        for p in range(passes):
            todo = [e for e in entries if self.passes_done(e) <= p]
            order = np.random.default_rng(seed + 1 + p).permutation(len(todo))
            todo = [todo[i] for i in order]
            plan.append(([todo[c:c + chunk] for c in range(0, len(todo), chunk)],
                         [s for s in samples if self.passes_done(s) <= p]))
        self.total = sum(sum(map(len, c)) + len(s) for c, s in plan)
        start_canary(self.check_canary, len(self.canary))
        for p, (chunks, pending) in enumerate(plan):
            per_chunk = math.ceil(len(pending) / max(1, len(chunks))) if pending else 0
            for ids in chunks:
                self.measure_chunk(ids)
                for _ in range(min(per_chunk, len(pending))):
                    gid = pending.pop(0)
                    self.record(gid, self.measure([gid])[0], 1.0)
                self.save(complete=False)
                self.progress(p)
            while pending:
                gid = pending.pop(0)
                self.record(gid, self.measure([gid])[0], 1.0)
            self.save(complete=False)
            self.progress(p)
        self.save(complete=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Time an mnas device bundle with onnxruntime "
                                "(numpy and onnxruntime only).")
    p.add_argument("bundle", help="the bundle directory (manifest.json, graphs)")
    p.add_argument("--out", help="results file (default BUNDLE/results.json); an unfinished "
                   "one is resumed")
    p.add_argument("--provider", help="onnxruntime execution provider (default: the bundle's)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: the bundle's)")
    for name in ("warmup", "runs", "rounds"):
        p.add_argument(f"--{name}", type=int, help=f"{name} (default: the bundle's)")
    p.add_argument("--statistic", choices=STATISTICS, help="of the timed runs (default: the "
                   "bundle's)")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _config(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    cfg = dict(defaults)
    for key in ("provider", "threads", "warmup", "runs", "rounds", "statistic"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.no_pin:
        cfg["pin"] = False
    for key in ("threads", "runs", "rounds"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"--{key}: expected a positive integer, got {cfg[key]!r}")
    if cfg["warmup"] < 0:
        raise ValueError(f"--warmup: expected an integer >= 0, got {cfg['warmup']!r}")
    if cfg["provider"] not in ort.get_available_providers():
        raise ValueError(f"--provider: {cfg['provider']!r} is not available here (available: "
                         f"{', '.join(ort.get_available_providers())})")
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = args.out or os.path.join(args.bundle, "results.json")
    try:
        with open(os.path.join(args.bundle, "manifest.json")) as fh:
            defaults = json.load(fh)["profiler"]
        run = _Run(args.bundle, out, _config(args, defaults), args.quiet)
        run.run()
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        print(f"device_profile: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"device_profile: interrupted; {out} keeps what was timed (run again to resume)",
              file=sys.stderr)
        return 130
    print(f"wrote {out}: {len(run.timed)} graphs timed. On the host: mnas latency build CONFIG "
          f"--from-bundle {out} --out table.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
