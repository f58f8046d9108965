"""The profiler mnas times graphs with on this machine (`mnas latency build/validate/measure`).

The timing procedure itself (pinning, session options, warm-up, rounds, the statistic) lives in
`latency.device_profile`, the standalone script a device bundle ships, which is the only module
that imports onnxruntime: a table timed here and one timed on a device by that script are
measured the same way. Timing on a shared 2-core machine is noisy (the same model 30 minutes
apart differed by up to 1.6x here); repeats minutes apart (the table's passes, `validate`'s
sweeps) are what catch slower drift; see `latency.build` and `latency.validate`.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mnas.config.loader import to_plain

from .device_profile import (available_providers, choose_cpu, cpu_model, make_feed, make_session,
                             onnxruntime_version, pinned, session_options, time_sessions)
from .options import ProfilerConfig

__all__ = ["Measurement", "Profiler", "ProfilerConfig", "ProfilerLike", "available_providers",
           "cpu_model", "onnxruntime_version"]


@dataclass(frozen=True)
class Measurement:
    """One graph's latency in ms (batch 1) and the relative spread of its per-round statistics."""

    ms: float
    spread: float
    rounds_ms: tuple[float, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"ms": self.ms, "spread": self.spread, "rounds_ms": list(self.rounds_ms)}


class ProfilerLike(Protocol):
    """What the table build, validation and the commands use of a profiler: `Profiler`, or a
    stand-in with the same methods (the tests' fakes time nothing)."""

    config: ProfilerConfig

    def measure(self, onnx_bytes: bytes, /) -> Measurement: ...

    def measure_many(self, graphs: list[bytes], /) -> list[Measurement]: ...

    def provenance(self) -> dict[str, Any]: ...


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
        if self._cpu is None:
            self._cpu = choose_cpu(self.config.threads, self.config.pin)
        return pinned(self._cpu is not None, self._cpu)

    def session_options(self, profile_path: str | None = None) -> Any:
        """The deployment's options (`device_profile.session_options`)."""
        return session_options(self.config.threads, profile_path)

    def _session(self, onnx_bytes: bytes, profile_path: str | None = None) -> Any:
        return make_session(onnx_bytes, self.config.provider, self.config.threads, profile_path)

    def measure(self, onnx_bytes: bytes) -> Measurement:
        """Latency of one graph: warm-up, then `rounds` rounds of `runs` timed runs."""
        return self.measure_many([onnx_bytes])[0]

    def measure_many(self, graphs: list[bytes]) -> list[Measurement]:
        """Several graphs timed round-robin, so slow drift hits all of them alike."""
        with self._pinned():
            sessions = [self._session(g) for g in graphs]
            timed = time_sessions(sessions, to_plain(self.config))
        return [Measurement(ms=ms, spread=spread, rounds_ms=tuple(rounds))
                for ms, spread, rounds in timed]

    def node_profile(self, onnx_bytes: bytes, runs: int | None = None) -> dict[str, float]:
        """Median per-node kernel time (ms) over `runs` profiled runs, keyed by node name.

        onnxruntime's own profiler attributes time to the nodes of the *optimised* graph; fused
        nodes keep the name of their first source node, which is enough to map them to layers."""
        runs = runs or self.config.runs
        with tempfile.TemporaryDirectory() as tmp, self._pinned():
            session = self._session(onnx_bytes, profile_path=os.path.join(tmp, "prof"))
            feed = make_feed(session)
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
                "profiler": to_plain(self.config), "pinned": self.config.pin and
                hasattr(os, "sched_setaffinity"),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

