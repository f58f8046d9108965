"""Fidelity metrics and validation sampling (never the calibration samples)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from latency import load_table
from latency.validate import fidelity, validate, validation_actions
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
