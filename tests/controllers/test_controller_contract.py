"""The contract every controller keeps: actions, log-probs, determinism, state round trip."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from controllers import CONTROLLERS, Controller, Sample
from search_spaces import SPACES, create_space

NAMES = sorted(CONTROLLERS)


class ActionPredictor:
    """Pseudo-latency of any space's architecture from its actions: 140 ms x the mean action
    position, so uniform samples centre on the 70 ms target."""

    def __init__(self, space) -> None:
        self.space = space

    def predict(self, arch) -> float:
        actions = self.space.encode(arch)
        return 140.0 * float(np.mean([a / max(1, d.size - 1)
                                      for a, d in zip(actions, self.space.decisions)]))

    def predict_many(self, archs) -> np.ndarray:
        return np.array([self.predict(a) for a in archs])


@pytest.fixture(scope="module", params=sorted(SPACES))
def space(request):
    """Every controller runs on every space unchanged (they see only `space.decisions`)."""
    return create_space({"name": request.param})


@pytest.fixture()
def predictor(space):
    return ActionPredictor(space)


def roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def actions_of(samples: list[Sample]) -> list[tuple[int, ...]]:
    return [s.actions for s in samples]


@pytest.mark.parametrize("name", NAMES)
def test_actions_match_the_space_decisions(make, space, name):
    controller = make(name)
    assert isinstance(controller, Controller)
    samples = controller.sample(12)
    sizes = [d.size for d in space.decisions]
    assert len(samples) == 12
    for s in samples:
        assert isinstance(s, Sample)
        assert isinstance(s.actions, tuple) and len(s.actions) == len(sizes)
        assert all(type(a) is int and 0 <= a < n for a, n in zip(s.actions, sizes))
        assert isinstance(s.log_prob, float) and math.isfinite(s.log_prob) and s.log_prob <= 0
        space.decode(s.actions)  # a valid architecture
    assert controller.sample(0) == []
    with pytest.raises(ValueError, match="non-negative"):
        controller.sample(-1)


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_immutable(make, name):
    sample = make(name).sample(1)[0]
    with pytest.raises(AttributeError):
        sample.log_prob = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_samples_other_seed_differs(make, name):
    a, b, c = make(name, seed=3), make(name, seed=3), make(name, seed=4)
    first = actions_of(a.sample(16))
    assert first == actions_of(b.sample(16))
    assert first != actions_of(c.sample(16))
    assert actions_of(a.sample(5)) == actions_of(b.sample(5))  # the streams stay in step


@pytest.mark.parametrize("name", NAMES)
def test_update_accepts_any_subset_in_any_order(make, name):
    controller = make(name)
    samples = controller.sample(10)
    rewards = [float(i) / 10 for i in range(10)]
    subset = [samples[i] for i in (7, 2, 9)]
    stats = controller.update(subset, [rewards[i] for i in (7, 2, 9)])
    assert isinstance(stats, dict)
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in stats.items())
    later = controller.sample(4)  # samples from before this batch may still come back
    controller.update([later[1], samples[0]], [0.3, 0.1])
    assert controller.update([], []) == {} or name == "constrained_random"


@pytest.mark.parametrize("name", NAMES)
def test_update_rejects_mismatched_batches(make, name):
    controller = make(name)
    samples = controller.sample(3)
    with pytest.raises(ValueError, match="3 samples but 2 rewards"):
        controller.update(samples, [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        controller.update(samples, [0.1, float("nan"), 0.2])
    with pytest.raises(ValueError, match="actions"):
        controller.update([Sample((0, 1), -1.0)], [0.5])


def _exercise(controller: Controller) -> None:
    """Move a controller away from its initial state (updates, a pending reward, baseline)."""
    for step in range(3):
        samples = controller.sample(6)
        controller.update(samples[: 4 + step % 2], [0.1 * i for i in range(4 + step % 2)])


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_continues_identically(make, name):
    original = make(name, seed=11)
    _exercise(original)
    state = roundtrip(original.state_dict())
    restored = make(name, seed=999)  # a different seed: everything must come from the state
    restored.load_state_dict(state)
    a, b = original.sample(8), restored.sample(8)
    assert a == b  # actions, log-probs (bit for bit) and versions
    rewards = [0.05 * i for i in range(8)]
    stats_a, stats_b = original.update(a, rewards), restored.update(b, rewards)
    assert stats_a == stats_b
    assert original.sample(8) == restored.sample(8)


@pytest.mark.parametrize("name", NAMES)
def test_state_contains_only_weights_only_types(make, name):
    controller = make(name)
    _exercise(controller)

    def check(value, where="state"):
        if isinstance(value, dict):
            for k, v in value.items():
                assert isinstance(k, (str, int)), where
                check(v, f"{where}.{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                check(v, f"{where}[{i}]")
        else:
            assert value is None or isinstance(value, (torch.Tensor, str, int, float, bool)), \
                f"{where}: {type(value).__name__}"
    check(controller.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_loading_another_controllers_state_fails_clearly(make, name):
    other = next(n for n in NAMES if n != name)
    with pytest.raises(ValueError, match="cannot load"):
        make(name).load_state_dict(make(other).state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_loading_a_state_of_another_space_fails_clearly(make, space, predictor, name):
    from controllers import create_controller
    from search_spaces import MnasNetSpace

    small = MnasNetSpace(kernels=(3,))
    foreign = create_controller(name, small, predictor=predictor, target_ms=70.0)
    with pytest.raises(ValueError, match="different decisions"):
        make(name).load_state_dict(foreign.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_sampling_leaves_global_random_state_alone(make, name):
    torch.manual_seed(0)
    np.random.seed(0)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(0)
    np.random.seed(0)
    controller = make(name)
    controller.update(controller.sample(4), [0.1, 0.2, 0.3, 0.4])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
