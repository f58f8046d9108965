"""The MnasNet reward: table-driven values, the paper's trade-off, presets, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mnas.reward import REWARD_PRESETS, mnas_reward, mnas_reward_many, resolve_weights

SOFT = dict(alpha=-0.07, beta=-0.07)
HARD = dict(alpha=0.0, beta=-1.0)


@pytest.mark.parametrize("acc, lat, target, weights, expected", [
    # at the target every preset gives the accuracy itself
    (0.5, 80.0, 80.0, SOFT, 0.5),
    (0.5, 80.0, 80.0, HARD, 0.5),
    # soft: twice the latency costs a factor 2 ** -0.07
    (0.5, 160.0, 80.0, SOFT, 0.5 * 2 ** -0.07),
    # soft: half the latency earns a factor 2 ** 0.07
    (0.5, 40.0, 80.0, SOFT, 0.5 * 2 ** 0.07),
    # hard: under the target no bonus, over it divided by LAT/T
    (0.5, 40.0, 80.0, HARD, 0.5),
    (0.5, 160.0, 80.0, HARD, 0.25),
    (0.9, 100.0, 75.0, HARD, 0.9 * 0.75),
    # asymmetric explicit weights pick alpha below and beta above the target
    (0.8, 50.0, 100.0, dict(alpha=-0.5, beta=-2.0), 0.8 * 0.5 ** -0.5),
    (0.8, 200.0, 100.0, dict(alpha=-0.5, beta=-2.0), 0.8 * 2.0 ** -2.0),
    (0.0, 123.0, 80.0, SOFT, 0.0),
])
def test_reward_table(acc, lat, target, weights, expected):
    assert mnas_reward(acc, lat, target_ms=target, **weights) == pytest.approx(expected, rel=1e-12)


def test_paper_soft_tradeoff_two_x_latency_is_worth_about_five_percent():
    """ACC 0.5 at T = 80 ms scores the same as ACC ~0.525 at 160 ms (2x latency ~ +5%)."""
    base = mnas_reward(0.5, 80.0, target_ms=80.0, **SOFT)
    equal_acc = 0.5 * 2 ** 0.07
    assert equal_acc == pytest.approx(0.5249, abs=1e-4)
    assert mnas_reward(equal_acc, 160.0, target_ms=80.0, **SOFT) == pytest.approx(base)
    assert 2 ** -0.07 == pytest.approx(0.9526, abs=1e-4)
    # a bit less than +5% accuracy is not enough to pay for the doubled latency, a bit more is
    assert mnas_reward(0.52, 160.0, target_ms=80.0, **SOFT) < base
    assert mnas_reward(0.53, 160.0, target_ms=80.0, **SOFT) > base


def test_hard_reward_is_continuous_at_target_and_monotone():
    lats = np.linspace(10.0, 300.0, 59)
    rewards = [mnas_reward(0.7, x, target_ms=75.0, **HARD) for x in lats]
    assert all(r == pytest.approx(0.7) for x, r in zip(lats, rewards) if x <= 75.0)
    assert all(a >= b for a, b in zip(rewards, rewards[1:]))
    assert mnas_reward(0.7, 75.0 + 1e-9, target_ms=75.0, **HARD) == pytest.approx(0.7)


@pytest.mark.parametrize("preset, alpha, beta, expected", [
    (None, None, None, (-0.07, -0.07)),
    ("soft", None, None, (-0.07, -0.07)),
    ("hard", None, None, (0.0, -1.0)),
    (None, -0.1, -0.3, (-0.1, -0.3)),
    (None, 0, -1, (0.0, -1.0)),
])
def test_resolve_weights(preset, alpha, beta, expected):
    assert resolve_weights(preset, alpha, beta) == expected
    assert all(isinstance(v, float) for v in resolve_weights(preset, alpha, beta))


@pytest.mark.parametrize("preset, alpha, beta, match", [
    ("medium", None, None, "unknown preset 'medium'"),
    (None, -0.1, None, "both alpha and beta"),
    (None, None, -0.1, "both alpha and beta"),
    ("soft", -0.1, -0.1, "exclusive"),
    (None, float("nan"), -0.1, "alpha must be a finite number"),
    (None, -0.1, "x", "beta must be a finite number"),
])
def test_resolve_weights_rejects(preset, alpha, beta, match):
    with pytest.raises(ValueError, match=match):
        resolve_weights(preset, alpha, beta)


def test_presets_are_the_papers():
    assert dict(REWARD_PRESETS) == {"soft": (-0.07, -0.07), "hard": (0.0, -1.0)}


@pytest.mark.parametrize("acc, lat, target, match", [
    (0.5, 80.0, 0.0, "target_ms must be > 0"),
    (0.5, 80.0, -5.0, "target_ms must be > 0"),
    (0.5, 0.0, 80.0, "latency_ms must be > 0"),
    (0.5, -1.0, 80.0, "latency_ms must be > 0"),
    (0.5, float("inf"), 80.0, "latency_ms must be finite"),
    (0.5, float("nan"), 80.0, "latency_ms must be finite"),
    (float("nan"), 80.0, 80.0, "accuracy must be finite"),
    (0.5, 80.0, float("inf"), "target_ms must be finite"),
    (None, 80.0, 80.0, "accuracy must be a number"),
    (True, 80.0, 80.0, "accuracy must be a number"),
])
def test_invalid_inputs(acc, lat, target, match):
    with pytest.raises(ValueError, match=match):
        mnas_reward(acc, lat, target_ms=target, **SOFT)


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(0)
    acc = rng.uniform(0, 1, 200)
    lat = rng.uniform(1, 300, 200)
    for weights in (SOFT, HARD, dict(alpha=-0.2, beta=-0.9)):
        many = mnas_reward_many(acc, lat, target_ms=75.0, **weights)
        one = [mnas_reward(a, x, target_ms=75.0, **weights) for a, x in zip(acc, lat)]
        np.testing.assert_allclose(many, one, rtol=1e-12)
        assert many.dtype == np.float64 and many.shape == (200,)


def test_vectorised_rejects_bad_rows_naming_index():
    with pytest.raises(ValueError, match=r"latency_ms\[2\]"):
        mnas_reward_many([0.5, 0.5, 0.5], [10.0, 20.0, 0.0], target_ms=80.0, **SOFT)
    with pytest.raises(ValueError, match=r"accuracy\[1\]"):
        mnas_reward_many([0.5, math.nan], [10.0, 20.0], target_ms=80.0, **SOFT)
    with pytest.raises(ValueError, match="shape"):
        mnas_reward_many([0.5], [10.0, 20.0], target_ms=80.0, **SOFT)
    assert mnas_reward_many([], [], target_ms=80.0, **SOFT).shape == (0,)
