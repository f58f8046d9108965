"""Table builds: an interrupted build resumes, keeps what was finished and times nothing twice;
a resume under other measurement conditions is refused."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latency import load_table
from latency.build import build_table
from latency.options import BuildOptions
from mnas.config.loader import load_section
from latency.keys import space_entries
from search_spaces.space import MnasNetSpace

OPTIONS = BuildOptions(calibration_samples=6, chunk=5, canary=False)


class Interrupt(Exception):
    pass


@pytest.fixture(autouse=True)
def _graphs_named_by_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Graphs are the entry key / the architecture's repr instead of exported ONNX, so the fake
    profiler counts measurements per entry exactly (real exports carry random weights and are
    never byte-identical), and the tests need no export time."""
    import latency.build as build
    monkeypatch.setattr(build, "entry_onnx", lambda e: e.key.encode())
    monkeypatch.setattr(build, "arch_onnx", lambda space, arch: repr(arch).encode())
    monkeypatch.setattr(build, "canary_onnx", lambda space: b"canary")


def _stop_after(chunks: int) -> Any:
    seen = []

    def on_chunk(done: int) -> None:
        seen.append(done)
        if len(seen) == chunks:
            raise Interrupt

    return on_chunk


def test_interrupted_build_resumes_without_measuring_twice(
        tmp_path: Path, tiny_space: MnasNetSpace, fake_profiler_cls: type) -> None:
    out = tmp_path / "t.json"
    profiler = fake_profiler_cls()
    with pytest.raises(Interrupt):
        build_table(tiny_space, profiler, out, OPTIONS, progress=False, on_chunk=_stop_after(2))
    partial = load_table(out)
    assert not partial.complete and len(partial.entries) == 2 * OPTIONS.chunk
    assert partial.samples  # calibration samples are measured between chunks
    first_calls = sum(profiler.calls.values())
    assert first_calls == len(partial.entries) + len(partial.samples)

    table = build_table(tiny_space, profiler, out, OPTIONS, progress=False)
    assert table.complete and table.calibration["selected"]
    for key, value in partial.entries.items():  # finished passes kept as they were
        assert table.entries[key]["passes_ms"][0] == value["ms"]
    entries = space_entries(tiny_space)
    assert set(table.entries) == {e.key for e in entries}
    assert len(table.samples) == OPTIONS.calibration_samples
    for before, after in zip(partial.samples, table.samples):  # finished passes kept
        assert after["actions"] == before["actions"]
        assert after["passes_ms"][:1] == before["passes_ms"]
    # every entry and every calibration sample timed once per pass over both sessions
    assert OPTIONS.passes == 2
    assert {profiler.calls[e.key] for e in entries} == {2}
    assert all(len(v["passes_ms"]) == 2 for v in table.entries.values())
    assert all(len(s["passes_ms"]) == 2 for s in table.samples)
    assert sum(profiler.calls.values()) == 2 * (len(entries) + OPTIONS.calibration_samples)


class _Jittery:
    """A fake profiler whose every other call to the same graph is 30% slower (a burst of load
    from elsewhere), with the `min` or `median` statistic."""

    def __init__(self, base: Any, statistic: str) -> None:
        from latency.options import ProfilerConfig
        self.base, self.seen = base, {}
        self.config = ProfilerConfig(warmup=1, runs=3, rounds=2, pin=False, statistic=statistic)

    def measure(self, graph: bytes) -> Any:
        from latency.profiler import Measurement
        m = self.base.measure(graph)
        self.seen[graph] = self.seen.get(graph, 0) + 1
        slow = 1.3 if self.seen[graph] % 2 else 1.0
        return Measurement(ms=m.ms * slow, spread=0.01)

    def provenance(self) -> dict[str, Any]:
        return self.base.provenance()


@pytest.mark.parametrize("statistic, factor", [("min", 1.0), ("median", 1.15)])
def test_passes_combine_by_the_statistic(tmp_path: Path, tiny_space: MnasNetSpace,
                                         fake_profiler_cls: type, statistic: str,
                                         factor: float) -> None:
    """Each entry is timed in separate passes; `min` keeps the best pass (the burst is
    discarded), `median` the middle of them; the spread is that of the passes."""
    profiler = _Jittery(fake_profiler_cls(), statistic)
    table = build_table(tiny_space, profiler, tmp_path / "t.json",
                        BuildOptions(calibration_samples=6, chunk=5, canary=False, passes=2),
                        progress=False)
    for value in list(table.entries.values()) + table.samples:  # end-to-end samples alike
        low, high = sorted(value["passes_ms"])
        assert high == pytest.approx(1.3 * low)
        assert value["ms"] == pytest.approx(factor * low)
        assert value["spread"] == pytest.approx(np.std([low, high], ddof=1) / (1.15 * low))


def test_complete_table_is_not_rebuilt(tmp_path: Path, tiny_space: MnasNetSpace,
                                       fake_profiler_cls: type) -> None:
    out = tmp_path / "t.json"
    build_table(tiny_space, fake_profiler_cls(), out, OPTIONS, progress=False)
    again = fake_profiler_cls()
    build_table(tiny_space, again, out, OPTIONS, progress=False)
    assert sum(again.calls.values()) == 0


def test_resume_on_another_machine_is_refused(tmp_path: Path, tiny_space: MnasNetSpace,
                                              fake_profiler_cls: type) -> None:
    out = tmp_path / "t.json"
    with pytest.raises(Interrupt):
        build_table(tiny_space, fake_profiler_cls("cpu A"), out, OPTIONS, progress=False,
                    on_chunk=_stop_after(1))
    with pytest.raises(ValueError, match="cannot resume: cpu was 'cpu A', now 'cpu B'"):
        build_table(tiny_space, fake_profiler_cls("cpu B"), out, OPTIONS, progress=False)


def test_resume_for_another_space_is_refused(tmp_path: Path, tiny_space: MnasNetSpace,
                                             tiny_dict: dict[str, Any],
                                             fake_profiler_cls: type) -> None:
    out = tmp_path / "t.json"
    with pytest.raises(Interrupt):
        build_table(tiny_space, fake_profiler_cls(), out, OPTIONS, progress=False,
                    on_chunk=_stop_after(1))
    other = MnasNetSpace.from_dict({**tiny_dict, "input_size": 24})
    with pytest.raises(ValueError, match=r"another search space: input_size \(table 16, config 24"):
        build_table(other, fake_profiler_cls(), out, OPTIONS, progress=False)


def test_build_with_canary_records_it(tmp_path: Path, tiny_space: MnasNetSpace,
                                      fake_profiler_cls: type) -> None:
    out = tmp_path / "t.json"
    table = build_table(tiny_space, fake_profiler_cls(), out,
                        BuildOptions(calibration_samples=6, chunk=10), progress=False)
    assert len(table.canary) >= 2 and all(c["ratio"] == 1.0 for c in table.canary)
    assert json.loads(out.read_text())["complete"] is True


@pytest.mark.parametrize("bad, key", [({"chunk": 0}, "chunk"), ({"drift_tol": -1}, "drift_tol"),
                                      ({"calibration_samples": 2.5}, "calibration_samples"),
                                      ({"chunks": 3}, "chunks"), ({"passes": 0}, "passes"),
                                      ({"validation_samples": 1}, "validation_samples"),
                                      ({"validation_samples": -2}, "validation_samples")])
def test_build_options_errors(bad: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"latency.kwargs.build.{key}"):
        load_section(BuildOptions, bad, "latency.kwargs.build")


def test_validation_samples_are_interleaved_and_resumed(
        tmp_path: Path, tiny_space: MnasNetSpace, fake_profiler_cls: type) -> None:
    """Validation architectures are timed between chunks alongside calibration ones (the same
    machine state), are never calibration samples, are what `validate` would pick, and an
    interrupted build times none of them twice."""
    from latency.build import VALIDATION_SEED, validation_actions
    from latency.validate import score_interleaved

    options = BuildOptions(calibration_samples=6, validation_samples=6, chunk=5, canary=False)
    out = tmp_path / "t.json"
    profiler = fake_profiler_cls()
    with pytest.raises(Interrupt):
        build_table(tiny_space, profiler, out, options, progress=False, on_chunk=_stop_after(2))
    partial = load_table(out)
    assert partial.samples and partial.validation  # both kinds from the first chunks on
    table = build_table(tiny_space, profiler, out, options, progress=False)
    cal = [s["actions"] for s in table.samples]
    val = [s["actions"] for s in table.validation]
    assert len(val) == 6 and not {tuple(a) for a in val} & {tuple(a) for a in cal}
    assert val == validation_actions(tiny_space, 6, VALIDATION_SEED, cal)
    for before, after in zip(partial.validation, table.validation):
        assert (after["actions"], after["passes_ms"][:1]) == (before["actions"],
                                                              before["passes_ms"])
    entries = len(space_entries(tiny_space))
    assert sum(profiler.calls.values()) == options.passes * (entries + len(cal) + len(val))
    scored = score_interleaved(tiny_space, table)
    assert scored is not None and scored["samples"] == 6
    assert set(scored["lut"]) >= {"mape", "within_10pct", "kendall_tau", "calibration"}
    no_val = build_table(tiny_space, fake_profiler_cls(), tmp_path / "n.json", OPTIONS,
                         progress=False)
    assert no_val.validation == [] and score_interleaved(tiny_space, no_val) is None


def test_build_progress_in_a_log_is_short_plain_lines(
        tmp_path: Path, tiny_space: MnasNetSpace, fake_profiler_cls: type,
        capsys: pytest.CaptureFixture[str]) -> None:
    """stderr not a terminal (captured here, as in a cluster job): no carriage-return redraws."""
    build_table(tiny_space, fake_profiler_cls(), tmp_path / "t.json", OPTIONS, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines(), err
    assert all(len(line) < 120 for line in err.splitlines())
    assert err.splitlines()[-1].startswith("latency table: ")


class _ColdCanary:
    """Wraps a profiler: the first timing of the (large) canary graph is 40% slow, as a cold
    first run often is; every later one is steady."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.config, self.canary_timings = inner, inner.config, 0

    def measure(self, onnx_bytes: bytes) -> Any:
        from latency.profiler import Measurement
        m = self.inner.measure(onnx_bytes)
        if len(onnx_bytes) > 200 and onnx_bytes == self.canary:
            self.canary_timings += 1
            if self.canary_timings == 1:
                return Measurement(ms=m.ms * 1.4, spread=m.spread)
        return m

    def provenance(self) -> dict[str, Any]:
        return self.inner.provenance()


def test_a_cold_first_canary_timing_retries_nothing(tmp_path: Path, tiny_space: MnasNetSpace,
                                                    fake_profiler_cls: type,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from latency.keys import canary_onnx
    monkeypatch.setattr("latency.build.time.sleep", lambda s: None)
    profiler = _ColdCanary(fake_profiler_cls())
    profiler.canary = canary_onnx(tiny_space)
    table = build_table(tiny_space, profiler, tmp_path / "t.json",
                        BuildOptions(calibration_samples=6, chunk=10, max_retries=2),
                        progress=False)
    chunks = -(-len(table.entries) // 10) * 2  # two passes
    # three timings before the first chunk, then exactly one per chunk: no chunk was re-timed
    assert len(table.canary) == 3 + chunks
    assert all(abs(c["ratio"] - 1.0) < 1e-9 for c in table.canary[3:])


def test_every_layer_and_network_is_exported_once_for_all_passes(
        tmp_path: Path, tiny_space: MnasNetSpace, fake_profiler_cls: type,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import latency.build as build
    exported: list[Any] = []
    for name in ("entry_onnx", "arch_onnx"):
        real = getattr(build, name)
        monkeypatch.setattr(build, name, lambda *a, real=real, name=name: (
            exported.append((name, str(a[-1]))), real(*a))[1])
    table = build_table(tiny_space, fake_profiler_cls(), tmp_path / "t.json",
                        BuildOptions(calibration_samples=6, chunk=5, canary=False, passes=3),
                        progress=False)
    assert all(len(e["passes_ms"]) == 3 for e in table.entries.values())
    assert len(exported) == len(table.entries) + 6


@pytest.mark.parametrize("ratios, measured", [([0.7], 1), ([1.0], 1), ([1.3, 1.1], 2),
                                              ([1.3, 1.3, 1.3, 1.3], 3)])
def test_only_a_slower_canary_re_times_a_chunk(ratios: list[float], measured: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from latency.device_profile import measure_watched
    monkeypatch.setattr("latency.device_profile.time.sleep", lambda s: None)
    calls: list[int] = []
    canary = iter(ratios)
    results, ratio = measure_watched(lambda: calls.append(1) or [len(calls)], lambda: next(canary),
                                     drift_tol=0.15, max_retries=2)
    assert len(calls) == measured and results == [measured] and ratio == ratios[measured - 1]
