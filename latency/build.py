"""Build a lookup table: time every distinct layer of a space in isolation, robustly.

Robustness on a shared machine: every entry is timed in `passes` separate passes, each in its own
random order, so one entry's measurements lie minutes apart and a burst of load from elsewhere
hits only one of them; the entry keeps the best pass (`min` statistic) or the median of passes.
A fixed canary network is re-timed every `chunk` entries; when it is slower than its running
median by more than `drift_tol` the chunk is re-measured (up to `max_retries` times). End-to-end
calibration samples are measured *between* chunks, once per pass like the entries, so table
entries and the measurements that calibrate them see the same machine state and are combined the
same way. The partial table is written atomically after every chunk: an interrupted build resumes
and keeps what is finished.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from mnas.progress import progress_bar
from search_spaces.space import MnasNetSpace

from .device_profile import canary_drift, measure_watched, start_canary
from .keys import Entry, arch_onnx, canary_onnx, entry_onnx, space_entries
from .options import BuildOptions
from .predictors import LutPredictor
from .table import LatencyTable, load_table, save_table

if TYPE_CHECKING:
    from .profiler import ProfilerLike


#: Seed of the validation networks (`validation_actions`): never the calibration networks'.
VALIDATION_SEED = 1_000_003


def validation_actions(space: MnasNetSpace, n: int, seed: int = VALIDATION_SEED,
                       exclude: Sequence[Sequence[int]] = ()) -> list[list[int]]:
    """`n` distinct random architectures (as actions), none of them in `exclude`: the networks
    a build times for validation and `latency.validate` measures."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"--samples: need at least 2 architectures to compare, got {n!r}")
    seen = {tuple(a) for a in exclude}
    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    for _ in range(100 * n):
        actions = space.sample_actions(rng)
        if tuple(actions) not in seen:
            seen.add(tuple(actions))
            out.append(actions)
            if len(out) == n:
                return out
    raise ValueError(f"the search space has fewer than {n} architectures outside the table's "
                     "calibration samples; use fewer --samples")


def _check_resume(old: LatencyTable, space: MnasNetSpace, provenance: dict[str, Any],
                  path: Path) -> None:
    old.check_space(space)
    for key in ("onnxruntime", "provider", "threads", "cpu", "profiler"):
        if old.provenance.get(key) != provenance.get(key):
            raise ValueError(f"{path}: cannot resume: {key} was {old.provenance.get(key)!r}, now "
                             f"{provenance.get(key)!r} (use another --out or delete the file)")


class _Builder:
    def __init__(self, space: MnasNetSpace, profiler: ProfilerLike, out: Path,
                 options: BuildOptions, progress: bool) -> None:
        self.space, self.profiler, self.out, self.opt = space, profiler, out, options
        self.progress = progress
        self.provenance = dict(profiler.provenance(), input_size=space.input_size,
                               space_fingerprint=space.fingerprint, exporter="torchscript")
        self.entries: dict[str, dict[str, Any]] = {}
        self.samples: list[dict[str, Any]] = []
        self.validation: list[dict[str, Any]] = []
        self.canary: list[dict[str, Any]] = []
        self.canary_bytes = canary_onnx(space) if options.canary else b""
        # exported once, timed in every pass: the export costs 3-5x the timing of a layer here
        self.graphs: dict[Any, bytes] = {}

    def resume(self) -> None:
        if not self.out.exists():
            return
        old = load_table(self.out)
        _check_resume(old, self.space, self.provenance, self.out)
        self.entries, self.samples = dict(old.entries), list(old.samples)
        self.validation = list(old.validation)
        self.canary = list(old.canary)
        self.provenance["date"] = old.provenance.get("date", self.provenance["date"])

    def save(self, complete: bool, calibration: dict[str, Any] | None = None) -> None:
        save_table(LatencyTable(space=self.space.to_dict(), fingerprint=self.space.fingerprint,
                                provenance=self.provenance, entries=self.entries,
                                samples=self.samples, calibration=calibration or {},
                                canary=self.canary, validation=self.validation,
                                complete=complete), self.out)

    def check_canary(self) -> float:
        """Time the canary; returns its ratio to the median of its earlier timings (1.0 for the
        first, and always without a canary)."""
        if not self.opt.canary:
            return 1.0
        m = self.profiler.measure(self.canary_bytes)
        ratio = canary_drift([c["ms"] for c in self.canary], m.ms)
        self.canary.append({"t": time.time(), "ms": m.ms, "ratio": ratio})
        return ratio

    def passes_done(self, key: str) -> int:
        return len(_passes(self.entries.get(key)))

    def measure_chunk(self, chunk: list[Entry], graphs: list[bytes]) -> None:
        results, ratio = measure_watched(lambda: [self.profiler.measure(g) for g in graphs],
                                         self.check_canary, self.opt.drift_tol,
                                         self.opt.max_retries)
        for e, m in zip(chunk, results):
            passes = _passes(self.entries.get(e.key)) + [m.ms]
            ms, spread = self.combine(passes, m.spread)
            self.entries[e.key] = {"ms": ms, "spread": spread, "passes_ms": passes,
                                   "canary_ratio": ratio}

    def combine(self, passes: list[float], one_spread: float) -> tuple[float, float]:
        stat = getattr(getattr(self.profiler, "config", None), "statistic", "median")
        return combine_passes(passes, one_spread, stat)

    def graph(self, key: Any, export: Callable[[], bytes]) -> bytes:
        """The ONNX of a layer or network, exported on first use and kept for later passes."""
        if key not in self.graphs:
            self.graphs[key] = export()
        return self.graphs[key]

    def sample_passes(self, kind: str, index: int) -> int:
        into = self.samples if kind == "calibration" else self.validation
        return len(_passes(into[index])) if index < len(into) else 0

    def measure_sample(self, kind: str, index: int, actions: list[int]) -> None:
        """One more pass of end-to-end sample `index` (samples are timed once per pass, like
        entries, so calibration fits and validation scores compare like with like)."""
        m = self.profiler.measure(self.graph((kind, index), lambda: arch_onnx(
            self.space, self.space.decode(actions))))
        into = self.samples if kind == "calibration" else self.validation
        passes = (_passes(into[index]) if index < len(into) else []) + [m.ms]
        ms, spread = self.combine(passes, m.spread)
        record = {"actions": list(actions), "ms": ms, "spread": spread, "passes_ms": passes}
        if index < len(into):
            into[index] = record
        else:
            into.append(record)


def combine_passes(passes: list[float], one_spread: float, statistic: str
                   ) -> tuple[float, float]:
    """The best pass (`min` statistic) or their median, and the spread of passes minutes
    apart (the honest repeatability; with one pass, that pass's rounds')."""
    ms = float(min(passes) if statistic == "min" else np.median(passes))
    spread = float(np.std(passes, ddof=1) / np.mean(passes)) if len(passes) > 1 \
        else one_spread
    return ms, spread


def _passes(entry: dict[str, Any] | None) -> list[float]:
    """The per-pass times of an entry (tables from before passes existed hold one)."""
    if not entry:
        return []
    return [float(x) for x in entry.get("passes_ms", [entry["ms"]])]


def _validation_plan(space: MnasNetSpace, opt: BuildOptions, calibration: list[list[int]]
                     ) -> list[list[int]]:
    """The validation architectures timed during the build: `validate`'s own seed, never a
    calibration sample."""
    if not opt.validation_samples:
        return []
    return validation_actions(space, opt.validation_samples, VALIDATION_SEED, calibration)


def _interleave(calibration: list[list[int]], validation: list[list[int]]
                ) -> list[tuple[str, int, list[int]]]:
    """Both kinds spread evenly over a pass, so neither sees a different machine state."""
    tagged = [(i / max(1, len(calibration)), "calibration", i, a)
              for i, a in enumerate(calibration)]
    tagged += [(i / max(1, len(validation)), "validation", i, a)
               for i, a in enumerate(validation)]
    return [(kind, i, a) for _, kind, i, a in sorted(tagged, key=lambda t: (t[0], t[1]))]


def sample_plan(space: MnasNetSpace, opt: BuildOptions) -> list[tuple[str, int, list[int]]]:
    """The end-to-end samples a build times, (kind, index, actions), in timing order."""
    rng = np.random.default_rng(opt.seed)
    planned = [space.sample_actions(rng) for _ in range(opt.calibration_samples)]
    return _interleave(planned, _validation_plan(space, opt, planned))


def finish_table(space: MnasNetSpace, out: str | os.PathLike[str]) -> LatencyTable:
    """Fit the calibration on the table's end-to-end samples and mark it complete."""

    table = load_table(out)
    calibration = LutPredictor(space, table, calibration="none").fit_calibration(table.samples)
    save_table(replace(table, calibration=calibration, complete=True), out)
    return load_table(out)


def build_table(space: MnasNetSpace, profiler: ProfilerLike, out: str | os.PathLike[str],
                options: BuildOptions | None = None, *, progress: bool = True,
                on_chunk: Callable[[int], None] | None = None) -> LatencyTable:
    """Build (or resume) the table for `space` at `out`; returns the finished table."""
    opt = options or BuildOptions()
    b = _Builder(space, profiler, Path(out), opt, progress)
    b.resume()
    entries = space_entries(space)
    samples = sample_plan(space, opt)
    plan: list[tuple[list[list[Entry]], list[tuple[str, int, list[int]]]]] = []
    for p in range(opt.passes):
        todo = [e for e in entries if b.passes_done(e.key) <= p]
        # random order, new each pass: slow drift then hits entries of all blocks alike, and the
        # ETA is realistic (network order would time all the large early-block layers first)
        order = np.random.default_rng(opt.seed + 1 + p).permutation(len(todo))
        todo = [todo[i] for i in order]
        plan.append(([todo[c:c + opt.chunk] for c in range(0, len(todo), opt.chunk)],
                     [s for s in samples if b.sample_passes(s[0], s[1]) <= p]))
    bar = progress_bar(sum(sum(map(len, c)) + len(s) for c, s in plan), desc="latency table",
                       unit="entry", enabled=progress, smoothing=0.05)
    start_canary(b.check_canary, len(b.canary))
    for chunks, pending in plan:
        # this pass's end-to-end samples, spread evenly between its chunks
        per_chunk = math.ceil(len(pending) / max(1, len(chunks))) if pending else 0
        for chunk in chunks:
            b.measure_chunk(chunk, [b.graph(e.key, partial(entry_onnx, e)) for e in chunk])
            bar.update(len(chunk))
            for _ in range(min(per_chunk, len(pending))):
                b.measure_sample(*pending.pop(0))
                bar.update(1)
            b.save(complete=False)
            if on_chunk is not None:
                on_chunk(len(b.entries))
        while pending:
            b.measure_sample(*pending.pop(0))
            bar.update(1)
        b.save(complete=False)
    bar.close()
    return finish_table(space, b.out)
