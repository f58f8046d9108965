"""Random baselines: uniformity, the latency band, the fallback, and the factory."""
from __future__ import annotations

import math

import numpy as np
import pytest

from controllers import (ConstrainedRandomController, RandomController, RNNController, RNNOptions,
                         controller_options, create_controller)


def test_random_is_uniform_per_decision(space):
    samples = RandomController(space, seed=0).sample(3000)
    actions = np.array([s.actions for s in samples])
    for t, d in enumerate(space.decisions):
        freq = np.bincount(actions[:, t], minlength=d.size) / len(samples)
        assert np.abs(freq - 1 / d.size).max() < 0.04, d.name
    assert samples[0].log_prob == pytest.approx(-math.log(space.size))


def test_constrained_random_respects_the_band(space, predictor, target_ms):
    controller = ConstrainedRandomController(space, predictor=predictor, target_ms=target_ms,
                                             band=(0.85, 1.0), seed=1)
    samples = controller.sample(40)
    for s in samples:
        latency = predictor.predict(space.decode(s.actions))
        assert 0.85 * target_ms <= latency <= target_ms
        assert s.predicted_ms == pytest.approx(latency)
    stats = controller.stats()
    assert stats["fallbacks"] == 0 and stats["samples"] == 40
    assert 0.02 < stats["acceptance_rate"] < 0.5  # it really rejected candidates
    assert stats["tries"] > 40
    # chunked prediction: far fewer predictor calls than candidates
    assert predictor.calls * 16 < predictor.archs


def test_uniform_random_mostly_misses_the_band(space, predictor, target_ms):
    samples = RandomController(space, seed=1).sample(200)
    latencies = np.array([predictor.predict(space.decode(s.actions)) for s in samples])
    assert np.mean((latencies >= 0.85 * target_ms) & (latencies <= target_ms)) < 0.3


def test_unreachable_target_falls_back_to_the_closest(space, predictor):
    controller = ConstrainedRandomController(space, predictor=predictor, target_ms=1.0,
                                             max_tries=50, seed=0)
    samples = controller.sample(3)
    stats = controller.update(samples, [0.0, 0.0, 0.0])
    assert stats["fallbacks"] == 3.0 and stats["tries"] == 150.0
    # the fallback is the fastest of its 50 candidates (all are above the band)
    rng_twin = RandomController(space, seed=0)
    candidates = rng_twin._draw(64)[:50]
    fastest = min(predictor.predict(space.decode([int(a) for a in row])) for row in candidates)
    assert samples[0].predicted_ms == pytest.approx(fastest)


def test_a_predictor_without_predict_many_works(space, target_ms):
    class OnlyPredict:
        def predict(self, arch):
            return float(sum(b.out_filters for b in arch.blocks)) / 10.0
    controller = ConstrainedRandomController(space, predictor=OnlyPredict(), target_ms=60.0,
                                             band=(0.9, 1.0))
    for s in controller.sample(5):
        assert 54.0 <= s.predicted_ms <= 60.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(band=(1.0, 0.5)), "controller.band"),
    (dict(band="wide"), "controller.band"),
    (dict(max_tries=0), "controller.max_tries"),
    (dict(target_ms=0.0), "target_ms"),
    (dict(target_ms=float("nan")), "target_ms"),
    (dict(predictor=object()), "latency predictor"),
])
def test_constrained_bad_options(space, predictor, kwargs, message):
    options = dict(predictor=predictor, target_ms=70.0) | kwargs
    with pytest.raises(ValueError, match=message):
        ConstrainedRandomController(space, **options)


# -- factory --------------------------------------------------------------------------------
def test_factory_builds_each_controller(space, predictor):
    assert isinstance(create_controller("rnn", space, algorithm="ppo", lr=0.001), RNNController)
    assert type(create_controller("random", space, predictor=predictor, target_ms=5.0)) \
        is RandomController
    built = create_controller("constrained_random", space, predictor=predictor, target_ms=70.0,
                              band=[0.8, 1.0], max_tries=10, seed=4)
    assert isinstance(built, ConstrainedRandomController)
    assert built.band == (0.8, 1.0) and built.max_tries == 10 and built.seed == 4


def test_factory_errors_name_the_problem(space, predictor):
    with pytest.raises(ValueError, match="unknown controller 'genetic'"):
        create_controller("genetic", space)
    with pytest.raises(ValueError, match="controller.hiden_size: unknown option for controller "
                                         "'rnn'"):
        create_controller("rnn", space, hiden_size=10)
    with pytest.raises(ValueError, match="controller.lr: unknown option for controller 'random'"):
        create_controller("random", space, lr=0.1)
    with pytest.raises(ValueError, match="controller.band: unknown option .* 'rnn'"):
        create_controller("rnn", space, band=(0.8, 1.0))
    with pytest.raises(ValueError, match="needs a latency predictor"):
        create_controller("constrained_random", space, target_ms=70.0)
    with pytest.raises(ValueError, match="needs a latency predictor"):
        create_controller("constrained_random", space, predictor=predictor)


def test_factory_takes_an_options_object(space):
    """The experiment config's `controller` section carries every controller's options: each
    controller reads its own from it."""
    from mnas.config.schema import ControllerConfig

    section = ControllerConfig(lr=0.02, band=(0.5, 0.9))
    rnn = create_controller("rnn", space, options=section)
    assert rnn.lr == 0.02 and rnn.options == RNNOptions(lr=0.02)
    assert type(create_controller("random", space, options=section)) is RandomController
    with pytest.raises(ValueError, match="controller.typo"):
        create_controller("random", space, typo=None)


def test_controller_options_lists_the_brief_kwargs():
    assert set(controller_options("rnn")) == {
        "algorithm", "hidden_size", "lr", "entropy_weight", "baseline_decay", "temperature",
        "tanh_constant", "ppo_epochs", "ppo_clip", "advantage", "top_fraction", "rank_window"}
    assert set(controller_options("constrained_random")) == {"band", "max_tries"}
    assert set(controller_options("evolution")) == {"population_size", "sample_size"}
    assert controller_options("random") == ()
