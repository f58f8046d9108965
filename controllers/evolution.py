"""Regularized (aging) evolution, Real et al. 2019 ("Regularized Evolution for Image Classifier
Architecture Search", AAAI), as a controller.

The first `population_size` samples are uniform. After that each sample is a child: draw
`sample_size` members of the population at random, take the one with the highest reward as the
parent, and change one of its decisions to another choice. Every reward that comes back joins
the population as its youngest member and the *oldest* member leaves (aging, not the worst):
a lucky, noisy reward cannot hold its place forever, which is what makes the method robust when
a child's accuracy is noisy.

Rewards may arrive late, out of order and only for some samples (the `Controller` contract):
the population is whatever has been told so far, and a sample asked for before any reward has
come back is uniform.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from mnas.config.loader import check

from .base import (Controller, Sample, check_count, check_seed, controller_options,
                   numpy_rng_state, restore_numpy_rng)

if TYPE_CHECKING:
    from search_spaces.interface import HasDecisions


@dataclass(frozen=True)
class EvolutionOptions:
    """Aging evolution's options: the population kept and the tournament drawn from it."""

    population_size: int = 50
    sample_size: int = 10

    def __post_init__(self) -> None:
        for key in ("population_size", "sample_size"):
            check(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        check(self.sample_size <= self.population_size, "sample_size",
              f"an integer <= population_size ({self.population_size})", self.sample_size)


class EvolutionController(Controller):
    """Aging evolution: tournament of `sample_size` from the last `population_size` rewarded.

    Defaults (population 50, tournament 10) were picked on the NAS-Bench-201 yardstick and the
    synthetic task with budgets of 200-2,000 samples (bench/yardstick.py); the paper's 100 / 25
    suit 20,000-sample searches, where an initial random phase of 100 costs little.
    """

    kind = "evolution"
    Options = EvolutionOptions

    def __init__(self, space: HasDecisions, *, seed: int = 0,
                 options: EvolutionOptions | None = None, **kwargs: Any) -> None:
        """`options`, or its fields as keywords (`population_size`, `sample_size`)."""
        super().__init__(space)
        opts = self.options = controller_options(EvolutionOptions, options, kwargs)
        self.population_size, self.sample_size = opts.population_size, opts.sample_size
        self.seed = check_seed(seed)
        self.rng = np.random.default_rng(self.seed)
        #: (actions, reward), oldest first; at most `population_size` long.
        self.population: deque[tuple[tuple[int, ...], float]] = deque()
        self.random_issued = 0  # uniform samples handed out for the initial population
        self.version = 0
        self._mutable = [t for t, n in enumerate(self.sizes) if n > 1]

    # -- proposing -----------------------------------------------------------------------------
    def _uniform(self) -> Sample:
        row = self.rng.integers(0, np.asarray(self.sizes))
        return Sample(tuple(int(a) for a in row), self.uniform_log_prob(), version=self.version)

    def _child(self) -> Sample:
        picks = self.rng.choice(len(self.population), size=min(self.sample_size,
                                                               len(self.population)),
                                replace=False)
        # the first of equal rewards wins (the oldest): deterministic, like max over a list
        parent = max((self.population[int(i)] for i in sorted(picks)), key=lambda m: m[1])[0]
        actions = list(parent)
        if not self._mutable:
            return Sample(tuple(actions), 0.0, version=self.version)
        t = self._mutable[int(self.rng.integers(len(self._mutable)))]
        shift = int(self.rng.integers(1, self.sizes[t]))  # any other choice, uniformly
        actions[t] = (actions[t] + shift) % self.sizes[t]
        # log-probability of this mutation given the parent (the proposal, not the tournament)
        log_prob = -math.log(len(self._mutable)) - math.log(self.sizes[t] - 1)
        return Sample(tuple(actions), log_prob, version=self.version)

    def sample(self, n: int) -> list[Sample]:
        n = check_count(n)
        out = []
        for _ in range(n):
            if not self.population or (self.random_issued < self.population_size
                                       and len(self.population) < self.population_size):
                self.random_issued += 1
                out.append(self._uniform())
            else:
                out.append(self._child())
        return out

    # -- learning ------------------------------------------------------------------------------
    def update(self, samples: Sequence[Sample], rewards: Sequence[float]) -> dict[str, float]:
        values = self._check_batch(samples, rewards)
        if len(samples) == 0:
            return {}
        for s, r in zip(samples, values):
            if any(not 0 <= a < n for a, n in zip(s.actions, self.sizes)):
                raise ValueError("update: a sample has an action outside its decision's choices")
            self.population.append((tuple(int(a) for a in s.actions), float(r)))
            if len(self.population) > self.population_size:
                self.population.popleft()  # the oldest dies, however good
        self.version += 1
        pop = np.asarray([r for _, r in self.population])
        return {"population": float(len(pop)), "population_best": float(pop.max()),
                "population_mean": float(pop.mean()), "reward_mean": float(values.mean()),
                "reward_max": float(values.max()), "samples": float(len(samples))}

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sizes": list(self.sizes),
                "population_size": self.population_size, "sample_size": self.sample_size,
                "population_actions": [list(a) for a, _ in self.population],
                "population_rewards": [r for _, r in self.population],
                "random_issued": self.random_issued, "version": self.version,
                "rng": numpy_rng_state(self.rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore population, counters and generator; the configured sizes stay (a resume with
        a smaller `population_size` keeps the youngest members)."""
        self._check_state(state)
        members = [(tuple(int(a) for a in acts), float(r))
                   for acts, r in zip(state["population_actions"], state["population_rewards"])]
        self.population = deque(members[-self.population_size:])
        self.random_issued = int(state["random_issued"])
        self.version = int(state["version"])
        self.rng = restore_numpy_rng(state["rng"])
