"""Fidelity metrics and validation sampling (never the calibration samples)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from latency import load_table
from latency.build import validation_actions
from latency.validate import fidelity, validate
from search_spaces.space import MnasNetSpace


def test_fidelity_by_hand() -> None:
    measured = [1.0, 2.0, 4.0, 8.0]
    predicted = [1.04, 1.81, 4.19, 7.0]  # errors 4%, 9.5%, 4.75%, 12.5%
    f = fidelity(predicted, measured)
    assert f["mape"] == pytest.approx((0.04 + 0.095 + 0.0475 + 0.125) / 4)
    assert f["within_5pct"] == pytest.approx(0.5)
    assert f["within_10pct"] == pytest.approx(0.75)
    assert f["kendall_tau"] == pytest.approx(1.0) and f["spearman_rho"] == pytest.approx(1.0)


def test_fidelity_ranks() -> None:
    rng = np.random.default_rng(0)
    measured = rng.uniform(1, 2, 50)
    assert fidelity(measured[::-1].copy(), measured)["kendall_tau"] == pytest.approx(
        kendalltau(measured[::-1], measured).statistic)
    assert fidelity(-measured + 3, measured)["spearman_rho"] == pytest.approx(-1.0)
    assert fidelity(measured * 1.2, measured)["within_10pct"] == 0.0


@pytest.mark.parametrize("pred, meas", [([1.0], [1.0]), ([1.0, 2.0], [1.0]),
                                        ([1.0, 2.0], [0.0, 1.0])])
def test_fidelity_rejects_bad_input(pred: list[float], meas: list[float]) -> None:
    with pytest.raises(ValueError, match="fidelity"):
        fidelity(pred, meas)


def test_validation_actions_exclude_calibration(tiny_space: MnasNetSpace,
                                                tiny_table_path: Path) -> None:
    table = load_table(tiny_table_path)
    calib = {tuple(s["actions"]) for s in table.samples}
    # 256 architectures in the tiny space: drawing 200 would hit calibration ones if allowed
    actions = validation_actions(tiny_space, 200, exclude=[s["actions"] for s in table.samples])
    drawn = {tuple(a) for a in actions}
    assert len(drawn) == 200 and not drawn & calib
    with pytest.raises(ValueError, match="fewer than 256"):
        validation_actions(tiny_space, 256, exclude=[s["actions"] for s in table.samples])
    with pytest.raises(ValueError, match="at least 2"):
        validation_actions(tiny_space, 1)


def test_validate_reports_both_predictors(tiny_space: MnasNetSpace, tiny_table_path: Path,
                                          fast_profiler: object) -> None:
    table = load_table(tiny_table_path)
    result = validate(tiny_space, table, fast_profiler, 10)
    assert result["samples"] == 10 and result["measurement_cv"] >= 0
    for name in ("lut", "flops"):
        r = result[name]
        assert 0 <= r["within_5pct"] <= r["within_10pct"] <= 1
        assert r["mape"] >= 0 and -1 <= r["kendall_tau"] <= 1 and -1 <= r["spearman_rho"] <= 1
    assert result["canary_ratio"] is None  # the tiny table was built without a canary
    per = result["per_arch"]
    assert len(per["measured_ms"]) == len(per["actions"]) == 10
    assert fidelity(per["lut_ms"], per["measured_ms"]) == {
        k: v for k, v in result["lut"].items() if k != "calibration"}


class _SweepProfiler:
    """Times every graph at a base set by its bytes, scaled by a factor per sweep (sweep k of
    every architecture is its k-th call), so the combination across sweeps is known exactly."""

    def __init__(self, statistic: str, factors: tuple[float, ...]) -> None:
        from latency.options import ProfilerConfig
        self.config = ProfilerConfig(statistic=statistic)
        self.factors, self.calls, self.base = factors, {}, {}

    def measure_many(self, graphs: list[bytes]) -> list[object]:
        from latency.profiler import Measurement
        out = []
        for g in graphs:
            n = self.calls[g] = self.calls.get(g, 0) + 1
            base = self.base.setdefault(g, 1.0 + len(self.base))
            out.append(Measurement(ms=base * self.factors[n - 1], spread=0.5))
        return out


@pytest.mark.parametrize("statistic, keep", [("min", 0.9), ("median", 1.1)])
def test_validate_sweeps_keep_best_or_median(statistic: str, keep: float,
                                             tiny_space: MnasNetSpace,
                                             tiny_table_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import latency.validate as validate_module
    # the graph is the architecture's repr: real exports carry random weights, never equal bytes
    monkeypatch.setattr(validate_module, "arch_onnx", lambda space, arch: repr(arch).encode())
    table = load_table(tiny_table_path)
    prof = _SweepProfiler(statistic, (1.2, 0.9, 1.1))
    result = validate(tiny_space, table, prof, 6, sweeps=3)
    assert set(prof.calls.values()) == {3} and len(prof.calls) == 6
    per = result["per_arch"]
    bases = np.array(per["sweeps_ms"])[:, 0] / 1.2
    assert per["measured_ms"] == pytest.approx(list(bases * keep))
    assert result["measurement_cv"] == pytest.approx(np.std([1.2, 0.9, 1.1], ddof=1) / (3.2 / 3))
    assert result["sweep_vs_sweep"]["kendall_tau"] == pytest.approx(1.0)
    assert result["sweep_vs_sweep"]["within_10pct"] == 0.0  # pairs 8%, 22%, 25% apart
    one = validate(tiny_space, table, _SweepProfiler(statistic, (1.2,)), 6, sweeps=1)
    assert one["sweep_vs_sweep"] is None and one["measurement_cv"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="--sweeps"):
        validate(tiny_space, table, prof, 6, sweeps=0)
