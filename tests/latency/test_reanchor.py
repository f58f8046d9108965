"""Re-anchoring: a table's canary re-timed now scales its predictions by the machine's speed now
against the build's; `validate` shows the figures with and without it; search reports it."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latency import create_predictor, load_table
from latency.predictors import LutPredictor
from latency.profiler import cpu_model, onnxruntime_version
from latency.validate import format_report, validate
from search_spaces.space import MnasNetSpace


def _with_canary(table: Any, ms: float, **provenance: Any) -> Any:
    prov = dict(table.provenance, **{"cpu": cpu_model(), "onnxruntime": onnxruntime_version(),
                                      **provenance})
    return dataclasses.replace(table, canary=[{"t": 0.0, "ms": ms, "ratio": 1.0}],
                               provenance=prov)


def test_scale_multiplies_every_prediction(tiny_space: MnasNetSpace, tiny_table_path: Path,
                                           tiny_archs: list[Any]) -> None:
    table = load_table(tiny_table_path)
    plain = LutPredictor(tiny_space, table).predict_many(tiny_archs)
    assert LutPredictor(tiny_space, table, scale=1.25).predict_many(tiny_archs) == \
        pytest.approx(plain * 1.25)
    with pytest.raises(ValueError, match="scale must be a number > 0"):
        LutPredictor(tiny_space, table, scale=0.0)


def test_lut_reanchors_on_the_machine_that_built_the_table(
        tiny_space: MnasNetSpace, tiny_table_path: Path, tiny_archs: list[Any],
        fast_profiler: Any) -> None:
    from latency.keys import canary_onnx
    base = load_table(tiny_table_path)
    now = fast_profiler.measure(canary_onnx(tiny_space)).ms
    table = _with_canary(base, 2 * now)  # "built" on a machine twice as slow as now
    plain = create_predictor("lut", space=tiny_space, table=base).predict_many(tiny_archs)
    assert create_predictor("lut", space=tiny_space, table=table).anchor is None  # off by default
    lut = create_predictor("lut", space=tiny_space, table=table, reanchor="auto")
    anchor = lut.anchor
    assert anchor["canary_ms_build"] == 2 * now and 0.1 < anchor["factor"] < 2.0
    assert anchor["canary_ms_now"] == pytest.approx(anchor["factor"] * 2 * now)
    assert lut.predict_many(tiny_archs) == pytest.approx(plain * anchor["factor"])
    off = create_predictor("lut", space=tiny_space, table=table, reanchor=False)
    assert off.anchor is None and off.predict_many(tiny_archs) == pytest.approx(plain)
    # a table timed elsewhere (another CPU, a device bundle) is not re-anchored against here
    for other in (_with_canary(base, now, cpu="another cpu"), _with_canary(base, now,
                                                                        bundle_id="b")):
        assert create_predictor("lut", space=tiny_space, table=other,
                                reanchor="auto").anchor is None
        assert create_predictor("lut", space=tiny_space, table=other,
                                reanchor=True).anchor is not None
    assert create_predictor("lut", space=tiny_space, table=base, reanchor=True).anchor is None
    with pytest.raises(ValueError, match="latency.kwargs.reanchor"):
        create_predictor("lut", space=tiny_space, table=table, reanchor="yes")


def test_validate_reports_with_and_without_reanchoring(
        tiny_space: MnasNetSpace, tiny_table_path: Path, fast_profiler: Any) -> None:
    from latency.keys import canary_onnx
    now = fast_profiler.measure(canary_onnx(tiny_space)).ms
    table = _with_canary(load_table(tiny_table_path), 2 * now)
    result = validate(tiny_space, table, fast_profiler, 6, sweeps=1)
    factor = result["reanchor_factor"]
    assert factor == pytest.approx(np.sqrt(result["canary_ratio"] *
                                           result["canary_ratio_after"]))
    per = result["per_arch"]
    assert per["lut_reanchored_ms"] == pytest.approx(list(np.array(per["lut_ms"]) * factor))
    assert result["lut_reanchored"]["kendall_tau"] == pytest.approx(result["lut"]["kendall_tau"])
    report = format_report(result)
    assert "lut re-anchored" in report.splitlines()[0] and f"{factor:.3f}" in report
