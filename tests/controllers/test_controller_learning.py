"""Does the RNN controller learn? A synthetic reward over the real MnasNet space's 42 decisions.

Reward = fraction of decisions matching a hidden target architecture. Random search's best over
the same budget stays near 0.6 (mean 0.375, standard deviation about 0.07 per sample).
"""
from __future__ import annotations

import numpy as np
import pytest

from controllers import create_controller
from controllers.synthetic import MatchTask, run_search

BUDGET, BATCH = 480, 16


def test_match_task_reward(space):
    task = MatchTask.random(space, 0)
    assert task.reward(task.target) == 1.0
    other = tuple((a + 1) % d.size for a, d in zip(task.target, space.decisions))
    assert task.reward(other) == 0.0
    with pytest.raises(ValueError, match="expected 42 actions"):
        task.reward((0, 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reinforce_learns_where_random_search_does_not(space, seed):
    task = MatchTask.random(space, 1000 + seed)
    rnn = run_search(create_controller("rnn", space, seed=seed), task, budget=BUDGET, batch=BATCH)
    assert rnn.last_batch_mean(BATCH) >= 0.8
    assert np.mean(rnn.rewards[:BATCH]) < 0.5  # it started from (near) uniform
    random = run_search(create_controller("random", space, seed=seed), task, budget=BUDGET,
                        batch=BATCH)
    assert max(random.rewards) < 0.7
    assert rnn.best_so_far()[-1] - max(random.rewards) >= 0.25


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_learns(space, seed):
    task = MatchTask.random(space, 2000 + seed)
    ppo = run_search(create_controller("rnn", space, seed=seed, algorithm="ppo"), task,
                     budget=BUDGET, batch=BATCH)
    assert ppo.last_batch_mean(BATCH) >= 0.8


def test_a_restored_controller_keeps_learning_the_same_way(space):
    """Resume mid-search: the rest of the search is identical to an uninterrupted one."""
    task = MatchTask.random(space, 7)
    straight = run_search(create_controller("rnn", space, seed=3), task, budget=96, batch=BATCH)
    first = create_controller("rnn", space, seed=3)
    head = run_search(first, task, budget=48, batch=BATCH)
    resumed = create_controller("rnn", space, seed=99)
    resumed.load_state_dict(first.state_dict())
    tail = run_search(resumed, task, budget=48, batch=BATCH)
    assert head.rewards + tail.rewards == straight.rewards


def test_noisy_search_records_true_rewards(space):
    task = MatchTask.random(space, 5)
    controller = create_controller("rnn", space, seed=0)
    trace = run_search(controller, task, budget=32, batch=BATCH, noise_std=0.5)
    assert all(abs(r * 42 - round(r * 42)) < 1e-9 for r in trace.rewards)  # true fractions
    for i, stats in enumerate(trace.stats):  # the controller saw noisy rewards
        true_mean = sum(trace.rewards[i * BATCH:(i + 1) * BATCH]) / BATCH
        assert abs(stats["reward_mean"] - true_mean) > 1e-6
