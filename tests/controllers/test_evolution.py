"""Regularized evolution specifics: the initial random phase, tournament + one mutation, aging,
late rewards, and learning the synthetic target."""
from __future__ import annotations

import numpy as np
import pytest

from controllers import EvolutionController, create_controller
from controllers.synthetic import MatchTask, run_search


def test_first_population_is_uniform_then_children_differ_in_one_decision(space):
    controller = EvolutionController(space, population_size=8, sample_size=3, seed=0)
    first = controller.sample(8)
    assert all(s.log_prob == pytest.approx(controller.uniform_log_prob()) for s in first)
    controller.update(first, [float(i) for i in range(8)])
    parents = {s.actions for s in first}
    for child in controller.sample(20):
        distances = [sum(a != b for a, b in zip(child.actions, p)) for p in parents]
        assert min(distances) == 1  # exactly one decision changed
        assert child.log_prob > controller.uniform_log_prob()


def test_tournament_picks_the_best_of_its_sample(space):
    """With the tournament as large as the population, every child's parent is the best."""
    controller = EvolutionController(space, population_size=6, sample_size=6, seed=1)
    first = controller.sample(6)
    controller.update(first, [0.1, 0.9, 0.2, 0.3, 0.4, 0.5])
    best = first[1].actions
    for child in controller.sample(30):
        assert sum(a != b for a, b in zip(child.actions, best)) == 1


def test_the_oldest_dies_not_the_worst(space):
    controller = EvolutionController(space, population_size=3, sample_size=2, seed=2)
    samples = controller.sample(3)
    controller.update(samples, [0.9, 0.1, 0.2])
    newer = controller.sample(1)
    stats = controller.update(newer, [0.0])
    assert [a for a, _ in controller.population] == [s.actions for s in samples[1:] + newer]
    assert stats["population"] == 3.0 and stats["population_best"] == 0.2


def test_samples_asked_before_any_reward_are_uniform(space):
    controller = EvolutionController(space, population_size=4, sample_size=2, seed=3)
    early = controller.sample(10)  # more than the population: nothing to breed from yet
    assert all(s.log_prob == pytest.approx(controller.uniform_log_prob()) for s in early)
    controller.update(early[:2], [0.5, 0.6])  # two of four back: breed from those two
    assert all(s.log_prob > controller.uniform_log_prob() for s in controller.sample(5))


@pytest.mark.parametrize("kwargs, message", [
    (dict(population_size=0), "controller.population_size"),
    (dict(sample_size=0), "controller.sample_size"),
    (dict(population_size=4, sample_size=5),
     "controller.sample_size: expected an integer <= population"),
    (dict(population_size=True), "controller.population_size"),
    (dict(seed=-1), "controller.seed"),
])
def test_bad_options_name_the_key(space, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EvolutionController(space, **kwargs)


def test_resume_with_a_smaller_population_keeps_the_youngest(space):
    old = EvolutionController(space, population_size=6, sample_size=2, seed=0)
    samples = old.sample(6)
    old.update(samples, [0.1 * i for i in range(6)])
    new = EvolutionController(space, population_size=4, sample_size=2)
    new.load_state_dict(old.state_dict())
    assert [a for a, _ in new.population] == [s.actions for s in samples[2:]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evolution_learns_where_random_search_does_not(space, seed):
    """The synthetic target (42 decisions): random's best stays below 0.7 (see the RNN test)."""
    task = MatchTask.random(space, 1000 + seed)
    evo = run_search(create_controller("evolution", space, seed=seed), task, budget=480,
                     batch=16)
    assert evo.best_so_far()[-1] >= 0.8
    assert np.mean(evo.rewards[:16]) < 0.5
