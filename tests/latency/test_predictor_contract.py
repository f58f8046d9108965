"""The contract every latency predictor must meet: predict(arch) is a positive float in ms,
predict_many matches predict elementwise, and the object satisfies `LatencyPredictor`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latency import LatencyPredictor, create_predictor
from search_spaces.space import MnasNetSpace

FAST = {"warmup": 1, "runs": 3, "rounds": 2, "pin": False}
NAMES = ("lut", "flops", "measured", "latency.examples:MacsParamsPredictor")


def _make(name: str, space: MnasNetSpace, table: Path) -> Any:
    if name == "measured":
        return create_predictor(name, space=space, profiler=FAST)
    if name.startswith("latency.examples"):
        return create_predictor(name, space=space, table=str(table), ms_per_mmac=0.02,
                                intercept_ms=0.01)
    return create_predictor(name, space=space, table=str(table))


@pytest.mark.parametrize("name", NAMES)
def test_predictor_contract(name: str, tiny_space: MnasNetSpace, tiny_table_path: Path,
                            tiny_archs: list[Any]) -> None:
    predictor = _make(name, tiny_space, tiny_table_path)
    assert isinstance(predictor, LatencyPredictor)
    one = [predictor.predict(a) for a in tiny_archs]
    assert all(type(v) is float and np.isfinite(v) and v > 0 for v in one), one
    many = predictor.predict_many(tiny_archs)
    assert isinstance(many, np.ndarray) and many.shape == (len(tiny_archs),)
    if name == "measured":  # two timings of the same graph: equal up to timing noise
        np.testing.assert_allclose(many, one, rtol=1.0)
    else:
        np.testing.assert_allclose(many, one, rtol=1e-12)
    assert predictor.predict_many([]).shape == (0,)


@pytest.mark.parametrize("name", ("lut", "flops"))
def test_table_predictors_rank_bigger_archs_slower(name: str, tiny_space: MnasNetSpace,
                                                   tiny_table_path: Path) -> None:
    """More layers of the same design cannot be predicted faster (costs are non-negative)."""
    predictor = _make(name, tiny_space, tiny_table_path)
    n = len(tiny_space.decisions)
    small = tiny_space.decode([0] * n)
    big = tiny_space.decode([a if d.name.endswith(".layers") is False else 1
                             for a, d in zip([0] * n, tiny_space.decisions)])
    assert big != small
    assert predictor.predict(big) >= predictor.predict(small)


def test_lut_calibration_is_applied(tiny_space: MnasNetSpace, tiny_table_path: Path,
                                    tiny_archs: list[Any]) -> None:
    """'auto' uses the table's fitted calibration, so it differs from the raw table sum."""
    from latency import load_table
    table = load_table(tiny_table_path)
    auto = create_predictor("lut", space=tiny_space, table=table)
    raw = create_predictor("lut", space=tiny_space, table=table, calibration="none")
    fit = table.calibration["fits"][table.calibration["selected"]]
    assert auto.calibration == table.calibration["selected"]
    if fit["features"] == ["lut"]:
        expected = raw.predict_many(tiny_archs) * fit["coef"][0] + fit["intercept"]
        np.testing.assert_allclose(auto.predict_many(tiny_archs), expected, rtol=1e-9)
    assert not np.allclose(auto.predict_many(tiny_archs), raw.predict_many(tiny_archs))


def test_flops_kwargs_without_table(tiny_space: MnasNetSpace, tiny_archs: list[Any]) -> None:
    from latency.examples import macs_and_weights
    p = create_predictor("flops", space=tiny_space, ms_per_mmac=2.0, intercept_ms=0.5)
    macs = [macs_and_weights(a, 16, 10)[0] for a in tiny_archs]
    np.testing.assert_allclose(p.predict_many(tiny_archs), 0.5 + 2.0 * np.array(macs) / 1e6)


def test_flops_without_cost_or_table_is_an_error(tiny_space: MnasNetSpace) -> None:
    with pytest.raises(ValueError, match="ms_per_mmac"):
        create_predictor("flops", space=tiny_space)
    with pytest.raises(ValueError, match="latency.kwargs.bogus"):
        create_predictor("flops", space=tiny_space, bogus=1)


def test_unknown_predictor_name(tiny_space: MnasNetSpace) -> None:
    with pytest.raises(ValueError, match="'lutt' is not one of lut, measured, flops"):
        create_predictor("lutt", space=tiny_space)


def test_lut_without_table_is_an_error(tiny_space: MnasNetSpace) -> None:
    with pytest.raises(ValueError, match="needs a table"):
        create_predictor("lut", space=tiny_space)


def test_custom_example_config_builds_the_example(tmp_path: Path) -> None:
    """experiments/custom_predictor.yaml names a class that exists and satisfies the protocol."""
    from latency.examples import MacsParamsPredictor
    from mnas.config.schema import load_config
    from mnas.search.runner import create_predictor as from_config

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "experiments" / "custom_predictor.yaml")
    predictor = from_config(config)
    assert isinstance(predictor, MacsParamsPredictor)
    archs = [config.space.sample(np.random.default_rng(i)) for i in range(20)]
    ms = predictor.predict_many(archs)
    assert np.all(ms > 0)
    # the config's target sits inside the range its children are predicted at
    assert ms.min() < config.latency.target_ms < ms.max()
