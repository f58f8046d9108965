"""RNN controller specifics: stored log-probs, logit shaping, REINFORCE/PPO steps, staleness."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from controllers import RNNController, Sample
from controllers.rnn import top_utilities


def test_stored_log_prob_equals_the_teacher_forced_one(space):
    controller = RNNController(space, seed=1, temperature=1.5, tanh_constant=2.5)
    samples = controller.sample(16)
    actions = torch.tensor([s.actions for s in samples])
    with torch.no_grad():
        logp, entropy = controller.log_probs(actions)
    stored = torch.tensor([s.log_prob for s in samples], dtype=torch.float32)
    assert torch.allclose(logp, stored, atol=1e-4)
    assert bool((entropy > 0).all())


def test_initial_policy_is_near_uniform(space):
    """Weights in [-0.1, 0.1] give almost uniform softmaxes: entropy close to the maximum."""
    controller = RNNController(space, seed=0)
    sizes = [d.size for d in space.decisions]
    max_entropy = sum(math.log(n) for n in sizes)
    with torch.no_grad():
        _, entropy = controller.log_probs(torch.tensor([s.actions for s in controller.sample(4)]))
    assert float(entropy.min()) > 0.97 * max_entropy
    params = torch.cat([p.detach().flatten() for p in controller.policy.parameters()])
    assert float(params.abs().max()) <= 0.1


def _peaked(space, **kwargs) -> RNNController:
    controller = RNNController(space, seed=0, **kwargs)
    with torch.no_grad():
        controller.policy.head.bias.zero_()
        controller.policy.head.bias[0] = 50.0  # decision 0, choice 0: a huge logit
    return controller


def _first_decision_probs(controller: RNNController) -> torch.Tensor:
    with torch.no_grad():
        logits = controller._shape(controller.policy.teacher_forced(torch.zeros(1, 42,
                                                                                dtype=torch.long)))
    return torch.softmax(logits[0, 0, : controller.sizes[0]], dim=-1)


def test_tanh_constant_bounds_and_temperature_flattens_the_logits(space):
    assert float(_first_decision_probs(_peaked(space))[0]) > 0.999
    clipped = _first_decision_probs(_peaked(space, tanh_constant=1.0))
    # logits within [-1, 1]: no choice more than e^2 times likelier than another
    assert float(clipped.max() / clipped.min()) <= math.exp(2.0) + 1e-4
    hot = _first_decision_probs(_peaked(space, temperature=100.0))
    assert float(hot[0]) < float(_first_decision_probs(_peaked(space, temperature=10.0))[0]) < 1


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_a_rewarded_sample_becomes_likelier(space, algorithm):
    controller = RNNController(space, seed=2, algorithm=algorithm, lr=0.01)
    samples = controller.sample(8)
    rewards = [1.0] + [0.0] * 7
    actions = torch.tensor([s.actions for s in samples])
    with torch.no_grad():
        before, _ = controller.log_probs(actions)
    stats = controller.update(samples, rewards)
    with torch.no_grad():
        after, _ = controller.log_probs(actions)
    assert float(after[0] - before[0]) > 0.1
    assert float((after[1:] - before[1:]).mean()) < 0
    assert stats["samples"] == 8.0 and math.isfinite(stats["loss"])
    if algorithm == "ppo":
        assert 0.0 <= stats["clip_fraction"] <= 1.0 and "approx_kl" in stats


def test_baseline_is_an_exponential_moving_average(space):
    controller = RNNController(space, seed=0, baseline_decay=0.9, advantage="baseline")
    samples = controller.sample(2)
    stats = controller.update(samples, [1.0, 3.0])
    assert stats["advantage_mean"] == pytest.approx(0.0)  # first batch: centred on its mean
    expected = 0.9 * (0.9 * 2.0 + 0.1 * 1.0) + 0.1 * 3.0
    assert stats["baseline"] == pytest.approx(expected)
    stats = controller.update(controller.sample(1), [5.0])
    assert stats["advantage_mean"] == pytest.approx(5.0 - expected)
    assert stats["baseline"] == pytest.approx(0.9 * expected + 0.5)


def test_top_utilities_reward_only_the_top_fraction():
    history = np.arange(10.0)  # rewards 0..9
    utilities = top_utilities(np.array([9.0, 8.0, 5.0, 0.0]), history, 0.2)
    # mid-rank quantiles 0.95, 0.85, 0.55, 0.05: only those above 0.8 count, scaled by 1 / 0.2
    assert utilities == pytest.approx([0.75, 0.25, 0.0, 0.0])
    assert top_utilities(np.array([3.0]), np.full(5, 3.0), 0.1) == pytest.approx([0.0])  # all tied


def test_risk_seeking_learns_from_the_best_and_ignores_the_rest(space):
    """Only the top sample of the window gets an advantage: the others' probabilities are not
    pushed down by their (low) rewards, and the reward's scale does not matter."""
    results = []
    for scale in (1.0, 100.0):
        controller = RNNController(space, seed=2, lr=0.01, advantage="risk_seeking",
                                   top_fraction=0.2)
        samples = controller.sample(8)
        actions = torch.tensor([s.actions for s in samples])
        with torch.no_grad():
            before, _ = controller.log_probs(actions)
        controller.update(samples, [scale * r for r in (1.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0)])
        with torch.no_grad():
            after, _ = controller.log_probs(actions)
        results.append(after - before)
        assert float(results[-1][0]) > 0.1
        assert len(controller.history) == 8
    assert torch.allclose(results[0], results[1])


def test_the_rank_window_is_kept_and_restored(space):
    controller = RNNController(space, seed=0, advantage="risk_seeking", rank_window=5)
    controller.update(controller.sample(4), [0.1, 0.2, 0.3, 0.4])
    controller.update(controller.sample(3), [0.5, 0.6, 0.7])
    assert controller.history == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    twin = RNNController(space, seed=9, advantage="risk_seeking", rank_window=3)
    twin.load_state_dict(controller.state_dict())
    assert twin.history == pytest.approx([0.5, 0.6, 0.7])


def test_ppo_uses_the_stored_log_prob_of_stale_samples(space):
    """A sample drawn by an old policy keeps its old log-prob: the ratio is against that."""
    controller = RNNController(space, seed=5, algorithm="ppo", ppo_epochs=1, ppo_clip=0.2)
    stale = controller.sample(4)
    for _ in range(5):
        controller.update(controller.sample(8), [float(i) for i in range(8)])
    stats = controller.update(stale, [1.0, 0.0, 1.0, 0.0])
    assert stats["staleness"] == 5.0
    # the policy has moved since: the importance ratios are no longer 1
    assert abs(stats["approx_kl"]) > 1e-3
    tampered = [Sample(s.actions, s.log_prob - 5.0, s.version) for s in stale]
    assert controller.update(tampered, [1.0, 0.0, 1.0, 0.0])["clip_fraction"] == 1.0


def test_nasnet_settings_are_reachable(space):
    controller = RNNController(space, lr=0.00035, entropy_weight=1e-5, baseline_decay=0.95,
                               hidden_size=100)
    assert controller.optimizer.param_groups[0]["lr"] == 0.00035
    assert controller.policy.lstm.hidden_size == 100


def test_load_keeps_the_configured_lr_and_checks_hidden_size(space):
    old = RNNController(space, lr=0.01)
    old.update(old.sample(4), [0.1, 0.2, 0.3, 0.4])
    new = RNNController(space, lr=0.002)
    new.load_state_dict(old.state_dict())
    assert new.optimizer.param_groups[0]["lr"] == 0.002
    with pytest.raises(ValueError, match="hidden_size 100 differs"):
        RNNController(space, hidden_size=32).load_state_dict(old.state_dict())


@pytest.mark.parametrize("kwargs, message", [
    (dict(algorithm="a2c"), "controller.algorithm"),
    (dict(lr=0.0), "controller.lr"),
    (dict(lr="fast"), "controller.lr"),
    (dict(hidden_size=0), "controller.hidden_size"),
    (dict(baseline_decay=1.5), "controller.baseline_decay"),
    (dict(temperature=-1.0), "controller.temperature"),
    (dict(tanh_constant=0.0), "controller.tanh_constant"),
    (dict(ppo_epochs=0), "controller.ppo_epochs"),
    (dict(ppo_clip=0.0), "controller.ppo_clip"),
    (dict(entropy_weight=-1.0), "controller.entropy_weight"),
    (dict(seed=-1), "controller.seed"),
    (dict(advantage="mean"), "controller.advantage"),
    (dict(top_fraction=0.0), "controller.top_fraction"),
    (dict(top_fraction=1.5), "controller.top_fraction"),
    (dict(rank_window=0), "controller.rank_window"),
])
def test_bad_options_name_the_key(space, kwargs, message):
    with pytest.raises(ValueError, match=message):
        RNNController(space, **kwargs)


def test_update_rejects_out_of_range_actions(space):
    controller = RNNController(space)
    bad = Sample((9,) + (0,) * 41, -1.0)
    with pytest.raises(ValueError, match="outside"):
        controller.update([bad], [1.0])


def test_sample_and_update_restore_the_thread_setting(space):
    threads = torch.get_num_threads()
    controller = RNNController(space)
    controller.update(controller.sample(2), [0.0, 1.0])
    assert torch.get_num_threads() == threads


def test_a_skipped_update_leaves_the_rank_window_as_it_was(space):
    controller = RNNController(space, seed=0, advantage="risk_seeking", rank_window=8)
    controller.update(controller.sample(4), [0.1, 0.2, 0.3, 0.4])
    before = list(controller.history)
    controller._step = lambda loss: False  # type: ignore[method-assign]  # a non-finite step
    stats = controller.update(controller.sample(4), [0.5, 0.6, 0.7, 0.8])
    assert stats["skipped"] == 1.0 and controller.history == before
