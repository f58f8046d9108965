"""Random-search baselines: uniform, and uniform within a predicted-latency band.

The constrained baseline is what makes a comparison fair: under a latency-aware reward an RNN
controller beats plain random search partly by learning where the latency target lies, which a
latency predictor tells random search for free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from mnas.config.loader import check

from .base import (Controller, NoOptions, Sample, check_count, check_seed, controller_options,
                   numpy_rng_state, restore_numpy_rng)

if TYPE_CHECKING:
    from latency import LatencyPredictor
    from search_spaces.interface import HasDecisions, SearchSpace

#: Candidates decoded and sent to `predict_many` at once.
CHUNK = 64


@dataclass(frozen=True)
class BandOptions:
    """The constrained random controller's options: the accepted band [lo, hi] of predicted
    latency as fractions of `latency.target_ms`, and the rejections allowed per sample."""

    band: tuple[float, float] = (0.85, 1.0)
    max_tries: int = 1000

    def __post_init__(self) -> None:
        lo, hi = self.band
        check(0 <= lo <= hi, "band", "[lo, hi] with 0 <= lo <= hi (fractions of the target)",
              list(self.band))
        check(self.max_tries > 0, "max_tries", "an integer > 0", self.max_tries)


class RandomController(Controller):
    """Uniform over every decision; `update` learns nothing."""

    kind = "random"

    def __init__(self, space: HasDecisions, *, seed: int = 0,
                 options: NoOptions | None = None) -> None:
        super().__init__(space)
        self.seed = check_seed(seed)
        self.rng = np.random.default_rng(self.seed)

    def _draw(self, n: int) -> np.ndarray:
        return self.rng.integers(0, np.asarray(self.sizes), size=(n, len(self.sizes)))

    def sample(self, n: int) -> list[Sample]:
        n = check_count(n)
        log_prob = self.uniform_log_prob()
        return [Sample(tuple(int(a) for a in row), log_prob) for row in self._draw(n)]

    def update(self, samples: Sequence[Sample], rewards: Sequence[float]) -> dict[str, Any]:
        self._check_batch(samples, rewards)
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sizes": list(self.sizes), "rng": numpy_rng_state(self.rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._check_state(state)
        self.rng = restore_numpy_rng(state["rng"])


class ConstrainedRandomController(RandomController):
    """Uniform samples rejected until the predicted latency lies in [lo * T, hi * T].

    After `max_tries` rejections for one sample the closest candidate seen is returned instead
    and counted as a fallback (a target the space cannot meet should not hang the search).
    """

    kind = "constrained_random"
    Options = BandOptions
    space: SearchSpace[Any]  # it decodes actions to price them, beyond `decisions`

    def __init__(self, space: SearchSpace[Any], *, predictor: LatencyPredictor, target_ms: float,
                 seed: int = 0, options: BandOptions | None = None, **kwargs: Any) -> None:
        """`options`, or its fields as keywords (`band=(0.9, 1.0)`, `max_tries`)."""
        super().__init__(space, seed=seed)
        opts = self.options = controller_options(BandOptions, options, kwargs)
        if predictor is None or not (hasattr(predictor, "predict_many")
                                     or hasattr(predictor, "predict")):
            raise ValueError("controller constrained_random: needs a latency predictor "
                             "(an object with predict/predict_many)")
        if isinstance(target_ms, bool) or not isinstance(target_ms, (int, float)) \
                or not math.isfinite(target_ms) or target_ms <= 0:
            raise ValueError(f"controller constrained_random: target_ms must be a positive "
                             f"number, got {target_ms!r}")
        self.predictor = predictor
        self.target_ms = float(target_ms)
        self.band, self.max_tries = opts.band, opts.max_tries
        self._buffer: list[tuple[tuple[int, ...], float]] = []
        self.counts = {"samples": 0, "tries": 0, "fallbacks": 0}

    @property
    def limits_ms(self) -> tuple[float, float]:
        return self.band[0] * self.target_ms, self.band[1] * self.target_ms

    def _distance(self, latency: float) -> float:
        """How far a latency lies outside the band (0 inside; inf for a failed prediction)."""
        if not math.isfinite(latency):
            return math.inf
        lo, hi = self.limits_ms
        return max(lo - latency, latency - hi, 0.0)

    def _predict(self, rows: np.ndarray) -> list[float]:
        archs = [self.space.decode([int(a) for a in row]) for row in rows]
        if hasattr(self.predictor, "predict_many"):
            values = np.asarray(self.predictor.predict_many(archs), dtype=np.float64).reshape(-1)
        else:
            values = np.asarray([self.predictor.predict(a) for a in archs], dtype=np.float64)
        if values.shape[0] != len(archs):
            raise ValueError(f"latency predictor returned {values.shape[0]} values for "
                             f"{len(archs)} architectures")
        return [float(v) for v in values]

    def _next_candidate(self) -> tuple[tuple[int, ...], float]:
        if not self._buffer:
            rows = self._draw(CHUNK)
            self._buffer = [(tuple(int(a) for a in row), ms)
                            for row, ms in zip(rows, self._predict(rows))]
        return self._buffer.pop(0)

    def _one(self) -> tuple[tuple[int, ...], float]:
        best: tuple[tuple[int, ...], float] | None = None
        best_distance = math.inf
        for _ in range(self.max_tries):
            actions, latency = self._next_candidate()
            self.counts["tries"] += 1
            distance = self._distance(latency)
            if distance == 0.0:
                return actions, latency
            if best is None or distance < best_distance:
                best, best_distance = (actions, latency), distance
        self.counts["fallbacks"] += 1
        assert best is not None  # max_tries >= 1
        return best

    def sample(self, n: int) -> list[Sample]:
        n = check_count(n)
        log_prob = self.uniform_log_prob()  # of the proposal; the accepted set is not enumerable
        out = []
        for _ in range(n):
            actions, latency = self._one()
            self.counts["samples"] += 1
            out.append(Sample(actions, log_prob, predicted_ms=latency))
        return out

    def update(self, samples: Sequence[Sample], rewards: Sequence[float]) -> dict[str, Any]:
        self._check_batch(samples, rewards)
        return self.stats()

    def stats(self) -> dict[str, float]:
        """Cumulative rejection-sampling counts (fallbacks = samples outside the band)."""
        samples, tries = self.counts["samples"], self.counts["tries"]
        return {"samples": float(samples), "tries": float(tries),
                "fallbacks": float(self.counts["fallbacks"]),
                "acceptance_rate": (samples - self.counts["fallbacks"]) / tries if tries else 0.0}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(counts=dict(self.counts),
                     buffer_actions=[list(a) for a, _ in self._buffer],
                     buffer_ms=[ms for _, ms in self._buffer])
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        self._buffer = [(tuple(int(a) for a in acts), float(ms))
                        for acts, ms in zip(state["buffer_actions"], state["buffer_ms"])]
