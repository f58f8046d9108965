"""Calibration fits and the raw lookup-table sum, checked against independent computations."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latency import create_predictor, load_table
from latency.calibrate import fit_calibrations, fit_linear
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
             "mmacs": rng.uniform(50, 300, n), "mweights": rng.uniform(1, 5, n),
             "blocks": rng.uniform(0.1, 0.5, (n, 9))}
    y = 0.8 * feats["lut"] - 0.03 * feats["layers"] + 0.5  # exactly linear_layers
    cal = fit_calibrations(feats, y)
    assert cal["selected"] in ("linear_layers", "blockwise_layers")
    assert cal["fits"]["linear_layers"]["cv_mape"] < 1e-6 < cal["fits"]["linear"]["cv_mape"]
    assert set(cal["fits"]) >= {"linear", "linear_layers", "flops"} and cal["samples"] == n


def test_raw_lut_is_the_sum_of_table_entries(arch_entries: Any, tiny_space: MnasNetSpace,
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


def test_weights_calibration_is_selected_when_weights_cost_time() -> None:
    """Inside a network every weight streams through the cache: a latency with a per-weight
    cost is fitted exactly by `linear_weights` and chosen over the lut-only kinds."""
    rng = np.random.default_rng(3)
    n = 60
    feats = {"lut": rng.uniform(1, 3, n), "layers": rng.integers(8, 20, n).astype(float),
             "mmacs": rng.uniform(50, 300, n), "mweights": rng.uniform(1, 5, n),
             "blocks": rng.uniform(0.1, 0.5, (n, 9))}
    y = 0.9 * feats["lut"] + 0.05 * feats["mweights"] + 0.1
    cal = fit_calibrations(feats, y)
    assert cal["selected"] == "linear_weights"
    np.testing.assert_allclose(cal["fits"]["linear_weights"]["coef"], [0.9, 0.05], atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_weights_feature_counts_the_models_weights(tiny_space: MnasNetSpace,
                                                   tiny_table_path: Path, seed: int) -> None:
    """The analytic weight count equals the built model's conv/linear weights and biases (BN
    excluded: it folds into the convs at inference)."""
    from torch import nn

    from search_spaces import build_model

    arch = tiny_space.sample(np.random.default_rng(seed))
    model = build_model(arch, num_classes=10)
    counted = sum(p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                  for p in m.parameters())
    lut = create_predictor("lut", space=tiny_space, table=load_table(tiny_table_path))
    assert lut.features([arch])["mweights"][0] * 1e6 == pytest.approx(counted)


def test_trees_evaluate_exactly_like_scikit_learn() -> None:
    """The stored trees, walked with numpy, give scikit-learn's own predictions."""
    from sklearn.ensemble import GradientBoostingRegressor

    from latency.calibrate import _TREES, Trees, fit_trees
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.integers(0, 3, 200), rng.uniform(0, 1, 200),
                         rng.choice([3.0, 5.0], 200)])
    target = 0.1 * x[:, 0] - 0.2 * (x[:, 2] == 5) + 0.05 * rng.standard_normal(200)
    reference = GradientBoostingRegressor(random_state=0, **_TREES).fit(x, target)
    fresh = rng.uniform(-1, 6, (50, 3))
    trees = Trees(fit_trees(x, target))
    np.testing.assert_allclose(trees.predict(fresh), reference.predict(fresh), atol=1e-9)
    trees.CHUNK = 7  # rows are walked in chunks: the boundaries change nothing
    np.testing.assert_allclose(trees.predict(fresh), reference.predict(fresh), atol=1e-9)
    with pytest.raises(ValueError, match="expected 3 features"):
        trees.predict(fresh[:, :2])


def _block_effect_data(n: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Latency = the table sum, but blocks whose choice is 1 run 15% slower inside the
    network: no scale on the sum can capture that, trees on the choices can."""
    rng = np.random.default_rng(4)
    feats = {"lut": rng.uniform(1, 3, n), "layers": rng.integers(8, 20, n).astype(float),
             "mmacs": rng.uniform(50, 300, n), "mweights": rng.uniform(1, 5, n),
             "blocks": rng.uniform(0.1, 0.5, (n, 9))}
    choice = rng.integers(0, 2, (n, 7)).astype(float)
    y = feats["lut"] * np.where(choice[:, 2] == 1, 1.15, 1.0)
    return feats, y, np.hstack([choice, feats["blocks"]])


def test_learned_calibration_is_selected_when_blocks_have_their_own_cost() -> None:
    from latency.calibrate import LEARNED_MIN_SAMPLES
    feats, y, corr = _block_effect_data(120)
    cal = fit_calibrations(feats, y, corr)
    assert cal["selected"] == "learned"
    assert cal["fits"]["learned"]["cv_mape"] < 0.5 * cal["fits"]["linear_layers"]["cv_mape"]
    few = LEARNED_MIN_SAMPLES - 1
    small = fit_calibrations({k: v[:few] for k, v in feats.items()}, y[:few], corr[:few])
    assert "learned" not in small["fits"]
    assert "learned" not in fit_calibrations(feats, y)["fits"]  # no correction features


def test_learned_calibration_round_trips_through_the_table(
        tiny_space: MnasNetSpace, tiny_table_path: Path, tmp_path: Path) -> None:
    """Fitted on a table's samples, saved as JSON, loaded: `lut` applies base x exp(trees)."""
    from dataclasses import replace

    from latency.calibrate import Trees
    from latency.predictors import LutPredictor
    from latency.table import save_table
    table = load_table(tiny_table_path)
    raw = LutPredictor(tiny_space, table, calibration="none")
    rng = np.random.default_rng(5)
    archs = [tiny_space.sample(rng) for _ in range(100)]
    feats = raw.features(archs)
    op1 = feats["correction"][:, 0]  # block 1's op, as a number
    slow = op1 == op1.min()
    samples = [{"actions": tiny_space.encode(a), "ms": float(m * (1.2 if s else 1.0))}
               for a, m, s in zip(archs, raw.predict_many(archs), slow)]
    cal = raw.fit_calibration(samples)
    assert cal["selected"] == "learned" and 0 < slow.mean() < 1
    save_table(replace(table, calibration=cal), tmp_path / "t.json")
    lut = LutPredictor(tiny_space, load_table(tmp_path / "t.json"))
    fit = cal["fits"]["learned"]
    base = np.column_stack([feats["lut"], feats["layers"]]) @ fit["coef"] + fit["intercept"]
    expected = base * np.exp(Trees(fit["trees"]).predict(feats["correction"]))
    np.testing.assert_allclose(lut.predict_many(archs), expected, rtol=1e-12)
    measured = np.array([s["ms"] for s in samples])
    assert np.mean(np.abs(lut.predict_many(archs) / measured - 1)) < 0.02
