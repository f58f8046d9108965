"""A synthetic search task to check that a controller learns, in seconds instead of GPU-days.

The reward of an action sequence is the fraction of decisions that match a hidden target
architecture's actions. It has the structure a controller must exploit (independent credit per
decision) and none of the cost of training children; random search's best over a few thousand
samples stays far below 1, while a learning controller approaches 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .base import Controller

if TYPE_CHECKING:
    from search_spaces.interface import SearchSpace


@dataclass(frozen=True)
class MatchTask:
    """Reward = fraction of decisions equal to `target` (a hidden architecture's actions)."""

    target: tuple[int, ...]

    @classmethod
    def random(cls, space: SearchSpace[Any], seed: int) -> "MatchTask":
        return cls(tuple(space.sample_actions(np.random.default_rng(seed))))

    def reward(self, actions: Sequence[int]) -> float:
        if len(actions) != len(self.target):
            raise ValueError(f"expected {len(self.target)} actions, got {len(actions)}")
        return float(np.mean(np.asarray(actions) == np.asarray(self.target)))


@dataclass(frozen=True)
class SearchTrace:
    """Rewards in sampling order and the per-batch update statistics."""

    rewards: tuple[float, ...]
    stats: tuple[dict[str, float], ...]

    def best_so_far(self) -> np.ndarray:
        return np.maximum.accumulate(np.asarray(self.rewards))

    def last_batch_mean(self, batch: int) -> float:
        return float(np.mean(self.rewards[-batch:]))


def run_search(controller: Controller, task: MatchTask, *, budget: int, batch: int,
               noise_std: float = 0.0, noise_seed: int = 0) -> SearchTrace:
    """Sample `budget` architectures in batches, updating the controller after each batch.

    With `noise_std` the controller sees reward + N(0, noise_std) (like a child's accuracy
    after a short, noisy training run) while the trace records the true rewards.
    """
    if budget < 1 or batch < 1 or noise_std < 0:
        raise ValueError("run_search: budget and batch must be positive, noise_std >= 0")
    noise = np.random.default_rng(noise_seed)
    rewards: list[float] = []
    stats: list[dict[str, float]] = []
    while len(rewards) < budget:
        samples = controller.sample(min(batch, budget - len(rewards)))
        values = [task.reward(s.actions) for s in samples]
        seen = [v + float(noise.normal(0.0, noise_std)) if noise_std else v for v in values]
        stats.append(controller.update(samples, seen))
        rewards.extend(values)
    return SearchTrace(tuple(rewards), tuple(stats))
