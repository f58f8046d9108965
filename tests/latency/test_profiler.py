"""The onnxruntime profiler: settings checked up front, the session options the deployment uses,
and a timing that responds to the work in the graph."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latency.device_profile import cpu_times, idlest_cpu, pinned, relative_spread, statistic
from latency.options import ProfilerConfig
from latency.profiler import Profiler
from mnas.config.loader import load_section


@pytest.mark.parametrize("data, key", [({"threads": 0}, "threads"), ({"runs": 1.5}, "runs"),
                                       ({"statistic": "p99"}, "statistic"),
                                       ({"warmup": -1}, "warmup"), ({"thread": 1}, "thread")])
def test_config_errors_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"latency.kwargs.profiler.{key}"):
        load_section(ProfilerConfig, data, "latency.kwargs.profiler")


def test_defaults_and_session_options() -> None:
    import onnxruntime as ort
    cfg = ProfilerConfig()
    assert (cfg.provider, cfg.threads, cfg.statistic) == ("CPUExecutionProvider", 1, "min")
    opts = Profiler(cfg).session_options()
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.intra_op_num_threads == 1
    prov = Profiler(ProfilerConfig(threads=2)).provenance()
    assert prov["threads"] == 2 and prov["batch"] == 1 and prov["onnxruntime"] == ort.__version__


def test_statistics() -> None:
    t = np.array([5.0, 1.0, 2.0, 3.0, 100.0])
    assert statistic(t, "median") == 3.0 and statistic(t, "min") == 1.0
    assert statistic(t, "mean") == pytest.approx(22.2)
    assert relative_spread(np.array([1.0])) == 0.0
    assert relative_spread(np.array([1.0, 3.0])) == pytest.approx(np.std([1, 3], ddof=1) / 2)


def test_pinned_restores_affinity() -> None:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no sched_setaffinity here")
    before = os.sched_getaffinity(0)
    with pinned(True):
        assert len(os.sched_getaffinity(0)) == 1
    assert os.sched_getaffinity(0) == before


def test_cpu_times_reads_busy_and_total(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 9 9 9 9 9 9 9 0 0\n"
                    "cpu0 10 0 5 80 5 0 0 0 0 0\n"  # user nice system idle iowait irq ...
                    "cpu1 1 2 3 100 0 0 0 4 0 0\n\nintr 1 2 3\n")
    assert cpu_times(str(stat)) == {0: (15, 100), 1: (10, 110)}
    assert cpu_times(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize("busy0, busy1, expected", [(90, 10, 1), (10, 90, 0), (50, 50, 1)])
def test_idlest_cpu_picks_the_least_busy(monkeypatch: pytest.MonkeyPatch, busy0: int,
                                         busy1: int, expected: int) -> None:
    import latency.device_profile as prof
    snapshots = iter([{0: (0, 0), 1: (0, 0)}, {0: (busy0, 100), 1: (busy1, 100)}])
    monkeypatch.setattr(prof, "cpu_times", lambda: next(snapshots))
    assert idlest_cpu({0, 1}, window_s=0) == expected


def test_profiler_keeps_a_taskset_choice_and_pins_to_the_idlest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs sched_setaffinity and two CPUs")
    import latency.device_profile as prof
    before = os.sched_getaffinity(0)
    low, high = min(before), max(before)
    monkeypatch.setattr(prof, "idlest_cpu", lambda cpus: low)
    with Profiler(ProfilerConfig())._pinned():
        assert os.sched_getaffinity(0) == {low}  # the idlest, not the last
    os.sched_setaffinity(0, {high})  # as `taskset -c high` would
    try:
        with Profiler(ProfilerConfig())._pinned():
            assert os.sched_getaffinity(0) == {high}
    finally:
        os.sched_setaffinity(0, before)
    with Profiler(ProfilerConfig(pin=False))._pinned():
        assert os.sched_getaffinity(0) == before


def test_bigger_graph_takes_longer(fast_profiler: Any) -> None:
    """The same layer at 4x the resolution: 16x the work must time clearly slower."""
    from latency.keys import entry_onnx
    from latency.keys import Entry
    from search_spaces.specs import LayerSpec
    spec = LayerSpec("ir", 5, 1, 6, 32, 32, 0.0, "none")
    small, big = (fast_profiler.measure(entry_onnx(Entry("x", "layer", r, 32, spec=spec)))
                  for r in (8, 32))
    assert small.ms > 0 and big.ms > 3 * small.ms
    assert len(big.rounds_ms) == fast_profiler.config.rounds


def test_profiled_graphs_keep_batch_one() -> None:
    """The table times batch-1 graphs (deployment exports get a dynamic batch axis instead)."""
    import onnx

    from latency.keys import arch_onnx
    from search_spaces import reference_arch
    from search_spaces.space import MnasNetSpace

    model = onnx.load_from_string(arch_onnx(MnasNetSpace(input_size=32),
                                            reference_arch("mnasnet_a1")))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 32]


def test_statistic_choices_are_the_device_scripts() -> None:
    """`ProfilerConfig.statistic` (checked by the config loader) offers exactly the statistics
    the standalone device script computes (it cannot import the project to share the tuple)."""
    from typing import get_args, get_type_hints

    from latency.device_profile import STATISTICS

    assert get_args(get_type_hints(ProfilerConfig)["statistic"]) == STATISTICS
