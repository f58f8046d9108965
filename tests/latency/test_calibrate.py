"""Calibration fits and the raw lookup-table sum, checked against independent computations."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latency import create_predictor, load_table
from latency.calibrate import fit_calibrations, fit_linear
from latency.keys import arch_entries
from search_spaces.space import MnasNetSpace


def test_fit_linear_recovers_a_per_layer_overhead() -> None:
    rng = np.random.default_rng(0)
    lut, layers = rng.uniform(1, 3, 60), rng.integers(8, 20, 60).astype(float)
    y = 0.9 * lut - 0.02 * layers + 0.3
    coef, intercept = fit_linear(np.column_stack([lut, layers]), y, free=[1])
    np.testing.assert_allclose(coef, [0.9, -0.02], atol=1e-8)
    assert intercept == pytest.approx(0.3, abs=1e-8)


def test_cost_slopes_stay_non_negative() -> None:
    """A cost that anti-correlates with latency gets slope 0, never a negative one."""
    rng = np.random.default_rng(1)
    a, b = rng.uniform(1, 2, 40), rng.uniform(1, 2, 40)
    coef, _ = fit_linear(np.column_stack([a, b]), 2 * a - 0.5 * b + 3)
    assert coef[0] > 0 and coef[1] == 0.0


def test_fit_calibrations_selects_the_lowest_cv_error() -> None:
    rng = np.random.default_rng(2)
    n = 60
    feats = {"lut": rng.uniform(1, 3, n), "layers": rng.integers(8, 20, n).astype(float),
             "mmacs": rng.uniform(50, 300, n), "blocks": rng.uniform(0.1, 0.5, (n, 9))}
    y = 0.8 * feats["lut"] - 0.03 * feats["layers"] + 0.5  # exactly linear_layers
    cal = fit_calibrations(feats, y)
    assert cal["selected"] in ("linear_layers", "blockwise_layers")
    assert cal["fits"]["linear_layers"]["cv_mape"] < 1e-6 < cal["fits"]["linear"]["cv_mape"]
    assert set(cal["fits"]) >= {"linear", "linear_layers", "flops"} and cal["samples"] == n


def test_raw_lut_is_the_sum_of_table_entries(tiny_space: MnasNetSpace,
                                             tiny_table_path: Path) -> None:
    """Every architecture of the tiny space (256, more than the cache's first allocation)."""
    table = load_table(tiny_table_path)
    ms = table.ms()
    raw = create_predictor("lut", space=tiny_space, table=table, calibration="none")
    archs = [tiny_space.decode(list(a))
             for a in np.ndindex(*[d.size for d in tiny_space.decisions])]
    expected = [sum(ms[e.key] for e in arch_entries(a, 16, 10)) for a in archs]
    np.testing.assert_allclose(raw.predict_many(archs), expected, rtol=1e-12)
    np.testing.assert_allclose([raw.predict(a) for a in archs[::-1]], expected[::-1],
                               rtol=1e-12)
