"""The MnasNet multi-objective reward (paper section 3): ACC(m) * (LAT(m) / T) ** w.

w = alpha when LAT <= T, else beta. The paper's *soft* constraint (alpha = beta = -0.07) makes a
model with twice the latency worth about 5% more accuracy (2 ** -0.07 ~= 0.953); the *hard*
constraint (alpha = 0, beta = -1) leaves models at or under the target unpenalised and divides
the accuracy of slower ones by LAT/T. The function is pure so logged accuracies and latencies can
be re-scored later under another target without retraining (`mnas export --target-ms`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

#: The range alpha and beta must lie in. 0 ignores latency; the paper uses -0.07 (soft) and -1
#: (hard). A positive exponent would reward slower models, and a steeper one lets a child far from
#: the target dominate every reward (beyond -2, 10x off the target changes a reward over
#: 100-fold; at -300 rewards reach 1e118 and the controller's weights become NaN).
EXPONENT_RANGE: tuple[float, float] = (-2.0, 0.0)

#: Named (alpha, beta) pairs from the paper.
REWARD_PRESETS: Mapping[str, tuple[float, float]] = {
    "soft": (-0.07, -0.07),
    "hard": (0.0, -1.0),
}


def resolve_weights(preset: str | None = None, alpha: float | None = None,
                    beta: float | None = None) -> tuple[float, float]:
    """(alpha, beta) from a preset name and/or explicit weights.

    Explicit weights must come as a pair; they may not be combined with a preset (two sources of
    truth would make a logged reward ambiguous). With nothing given the paper's default, soft.
    """
    if (alpha is None) != (beta is None):
        raise ValueError("reward: give both alpha and beta, or neither")
    if alpha is not None and beta is not None:
        if preset is not None:
            raise ValueError(f"reward: preset {preset!r} and explicit alpha/beta are exclusive")
        for name, value in (("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"reward: {name} must be a finite number, got {value!r}")
            _check_exponent(name, value)
        return float(alpha), float(beta)
    name = "soft" if preset is None else preset
    if name not in REWARD_PRESETS:
        raise ValueError(f"reward: unknown preset {preset!r} (expected one of "
                         f"{', '.join(REWARD_PRESETS)})")
    return REWARD_PRESETS[name]


def _check_exponent(name: str, value: float) -> float:
    lo, hi = EXPONENT_RANGE
    if not lo <= value <= hi:
        raise ValueError(f"reward: {name} must be in [{lo:g}, {hi:g}] (0 ignores latency, the "
                         f"paper uses -0.07 and -1), got {value!r}")
    return value


def _check_number(name: str, value: float, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"reward: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"reward: {name} must be finite, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"reward: {name} must be > 0, got {value!r}")
    return value


def mnas_reward(accuracy: float, latency_ms: float, *, target_ms: float, alpha: float,
                beta: float) -> float:
    """ACC * (LAT / T) ** w with w = alpha if LAT <= T else beta."""
    acc = _check_number("accuracy", accuracy, positive=False)
    lat = _check_number("latency_ms", latency_ms, positive=True)
    target = _check_number("target_ms", target_ms, positive=True)
    a = _check_exponent("alpha", _check_number("alpha", alpha, positive=False))
    b = _check_exponent("beta", _check_number("beta", beta, positive=False))
    ratio = lat / target
    try:
        return float(acc * ratio ** (a if lat <= target else b))
    except OverflowError:  # a latency ~1e-150 of the target: not a reward to learn from
        return math.inf


def mnas_reward_many(accuracy: np.ndarray, latency_ms: np.ndarray, *, target_ms: float,
                     alpha: float, beta: float) -> np.ndarray:
    """Vectorised `mnas_reward` for re-scoring many logged records at once (float64 array).

    Same validation as the scalar form: any non-finite value or non-positive latency is an
    error naming the first offending index, because silently producing NaN rewards would
    corrupt a ranking.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    lat = np.asarray(latency_ms, dtype=np.float64)
    if acc.shape != lat.shape:
        raise ValueError(f"reward: accuracy shape {acc.shape} != latency shape {lat.shape}")
    target = _check_number("target_ms", target_ms, positive=True)
    a = _check_exponent("alpha", _check_number("alpha", alpha, positive=False))
    b = _check_exponent("beta", _check_number("beta", beta, positive=False))
    bad_acc = ~np.isfinite(acc)
    if bad_acc.any():
        i = int(np.flatnonzero(bad_acc.ravel())[0])
        raise ValueError(f"reward: accuracy[{i}] must be finite, got {acc.ravel()[i]!r}")
    bad_lat = ~np.isfinite(lat) | (lat <= 0)
    if bad_lat.any():
        i = int(np.flatnonzero(bad_lat.ravel())[0])
        raise ValueError(f"reward: latency_ms[{i}] must be finite and > 0, got {lat.ravel()[i]!r}")
    ratio = lat / target
    return acc * ratio ** np.where(lat <= target, a, b)


@dataclass(frozen=True)
class RewardSpec:
    """How the search scores a finished child: the reward of an ok child, `failed_reward` for
    one that failed, diverged or timed out (or has no finite accuracy)."""

    target_ms: float
    alpha: float
    beta: float
    failed_reward: float = 0.0

    def score(self, status: str, accuracy: float | None, latency_ms: float | None) -> float:
        if status != "ok" or accuracy is None or not math.isfinite(accuracy) \
                or latency_ms is None:
            return float(self.failed_reward)
        return mnas_reward(accuracy, latency_ms, target_ms=self.target_ms, alpha=self.alpha,
                           beta=self.beta)
