"""MnasSearcher under a real local Ray Tune: a tiny trainable whose accuracy is a function of the
architecture, the reward computed with the predicted latency, controller updates, ASHA stopping
children early, and save/restore (unit and through Tuner.restore)."""
from __future__ import annotations

import os
import signal
import time

import pytest

tune_mod = pytest.importorskip("ray.tune")

from controllers import create_controller
from mnas.reward import mnas_reward
from mnas.reward import RewardSpec
from mnas.tune import MnasSearcher, arch_from_config
from search_spaces.space import MnasNetSpace

SPACE = {"base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 8, "layers": 1},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 16, "layers": 1}],
         "ops": ["dconv", "mbconv3"], "kernels": [3, 5], "se_ratios": [0.0, 0.25],
         "skips": ["none"], "filter_multipliers": [1.0], "layer_deltas": [0], "stem_filters": 8,
         "head_filters": 32, "input_size": 16, "num_classes": 4}
REWARD = RewardSpec(target_ms=8.0, alpha=-0.07, beta=-0.07, failed_reward=0.0)


def latency(arch) -> float:
    return float(sum(b.kernel for b in arch.blocks))


def accuracy_of(blocks: list[str], step: int = 4) -> float:
    """What the fake child reaches after `step` reports: more with SE, rising with steps."""
    se = sum("_se" in b for b in blocks)
    return round(0.2 + 0.1 * se + 0.05 * step, 4)


def make_searcher(seed: int = 0, batch: int = 3) -> MnasSearcher:
    space = MnasNetSpace.from_dict(SPACE)
    controller = create_controller("rnn", space, seed=seed)
    return MnasSearcher(controller, space, latency, REWARD, batch=batch)


def test_suggest_complete_reward_and_update() -> None:
    searcher = make_searcher()
    before = {k: v.clone() for k, v in searcher.controller.state_dict()["model"].items()} \
        if "model" in searcher.controller.state_dict() else None
    configs = {f"t{i}": searcher.suggest(f"t{i}") for i in range(4)}
    for trial_id, config in list(configs.items())[:3]:
        arch = arch_from_config(config)
        assert config["mnas"]["latency_ms"] == latency(arch)
        searcher.on_trial_result(trial_id, {"accuracy": 0.1})
        searcher.on_trial_complete(trial_id, {"accuracy": accuracy_of(config["mnas"]["blocks"])})
    assert searcher.updates == 1  # batch of 3 rewards
    for record, config in zip(searcher.history, configs.values()):
        arch = arch_from_config(config)
        assert record["reward"] == pytest.approx(mnas_reward(
            accuracy_of(record["arch"]), latency(arch), target_ms=8.0, alpha=-0.07, beta=-0.07))
    searcher.on_trial_complete("t3", None, error=True)
    assert searcher.history[-1]["status"] == "failed" and searcher.history[-1]["reward"] == 0.0
    if before is not None:
        after = searcher.controller.state_dict()["model"]
        assert any(not (after[k] == before[k]).all() for k in before)


def test_save_restore_round_trips_and_continues_identically(tmp_path) -> None:
    searcher = make_searcher()
    for i in range(4):
        config = searcher.suggest(f"t{i}")
        if i < 2:
            searcher.on_trial_complete(f"t{i}", {"accuracy": accuracy_of(config["mnas"]["blocks"])})
    searcher.save(str(tmp_path / "state.pkl"))
    restored = make_searcher(seed=123)  # a different controller until restored
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.history == searcher.history
    for twin in (searcher, restored):  # the two go on alike: live trials, then new samples
        twin.on_trial_complete("t2", {"accuracy": 0.5})
        twin.on_trial_complete("t3", {"accuracy": 0.6})
    assert searcher.updates == restored.updates == 1
    assert [searcher.suggest(f"n{i}") for i in range(5)] == \
        [restored.suggest(f"n{i}") for i in range(5)]


def test_mode_min_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be 'max'"):
        make_searcher().set_search_properties("accuracy", "min", {})


# --- a real Tuner -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    from mnas.search.ray_pool import init_ray, shutdown_ray

    shutdown_ray()
    init_ray(num_cpus=2)
    yield
    shutdown_ray()


def make_trainable(steps: int = 4, driver_pid: int | None = None, marker_dir: str | None = None):
    """The fake child (made in a factory so Ray pickles it by value): reports `accuracy_of` its
    blocks after each of `steps` steps. With `marker_dir`, the third child to start stops the
    driver's Tune run (SIGUSR1: what Ctrl-C does, without pytest seeing a SIGINT) and never
    reports."""

    def train(config):
        from ray import tune

        from mnas.tune import arch_from_config

        arch_from_config(config)  # a user's trainable builds its network from this
        se = sum("_se" in b for b in config["mnas"]["blocks"])
        if marker_dir is not None:
            started = len(os.listdir(marker_dir))
            open(os.path.join(marker_dir, f"{started}-{os.getpid()}-{time.time()}"), "w").close()
            if started == 2:
                os.kill(driver_pid, signal.SIGUSR1)
                time.sleep(30)
        for step in range(1, steps + 1):
            tune.report({"accuracy": round(0.2 + 0.1 * se + 0.05 * step, 4)})

    return train


def run_config(tmp_path, name):
    from ray import tune
    return tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0)


@pytest.mark.ray
@pytest.mark.slow  # 8 Tune trials: about 45 s here
def test_tuner_with_asha_rewards_the_last_reported_accuracy(local_ray, tmp_path) -> None:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    searcher = make_searcher(batch=4)
    tuner = tune.Tuner(make_trainable(), run_config=run_config(tmp_path, "asha"),
                       tune_config=tune.TuneConfig(
                           search_alg=searcher, num_samples=8, metric="accuracy", mode="max",
                           scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2)))
    results = tuner.fit()
    assert len(results) == 8 and not results.errors
    assert len(searcher.history) == 8 and searcher.updates == 2
    stopped = [r for r in searcher.history if r["iterations"] < 4]
    assert stopped  # ASHA stopped some children early
    for record in searcher.history:
            assert record["accuracy"] == accuracy_of(record["arch"], record["iterations"])


@pytest.mark.ray
@pytest.mark.slow  # two Tune runs of 6 children: about 40 s here
def test_tuner_restore_continues_the_search(local_ray, tmp_path) -> None:
    import glob

    import torch
    from ray import tune

    markers = tmp_path / "markers"
    markers.mkdir()
    fn = make_trainable(1, driver_pid=os.getpid(), marker_dir=str(markers))
    searcher = make_searcher(batch=2)
    tuner = tune.Tuner(fn, run_config=run_config(tmp_path, "resumed"),
                       tune_config=tune.TuneConfig(search_alg=searcher, num_samples=6,
                                                   metric="accuracy", mode="max",
                                                   max_concurrent_trials=1))
    tuner.fit()
    before = list(searcher.history)
    assert len(before) == 2 and searcher.updates == 1  # stopped during the third child
    path = str(tmp_path / "resumed")
    assert tune.Tuner.can_restore(path)
    tune.Tuner.restore(path, trainable=fn).fit()
    state_file = max(glob.glob(os.path.join(path, "searcher-state-*.pkl")))  # the last session
    state = torch.load(state_file, weights_only=True)
    assert state["history"][:2] == before  # the first run's rewards were kept
    assert len(state["history"]) == 6 and state["updates"] == 3


def test_from_config_builds_what_mnas_search_builds() -> None:
    from mnas.config.schema import config_from_dict

    config = config_from_dict({
        "search_space": SPACE, "budget": {"batch": 5},
        "latency": {"predictor": "flops", "kwargs": {"ms_per_mmac": 2.0}, "target_ms": 3.0},
        "reward": {"preset": "hard", "failed_reward": -1.0}})
    searcher = MnasSearcher.from_config(config)
    assert searcher.batch == 5 and searcher.reward == RewardSpec(3.0, 0.0, -1.0, -1.0)
    child = searcher.suggest("a")["mnas"]
    assert child["latency_ms"] > 0 and len(child["blocks"]) == 2
    searcher.on_trial_complete("a", None, error=True)
    assert searcher.history[0]["reward"] == -1.0


@pytest.mark.ray
@pytest.mark.slow  # trains two real children inside Tune trials
def test_the_builtin_trainable_reports_every_epoch(local_ray, tmp_path) -> None:
    from ray import tune

    from mnas.training.data import DataConfig
    from mnas.training.trainer import TrainConfig
    from mnas.tune import child_trainable

    train_config = TrainConfig(data=DataConfig(name="synthetic", synthetic_samples=96,
                                               num_classes=4, input_size=16),
                               epochs=2, batch_size=16, threads=1)
    searcher = make_searcher(batch=2)
    tune.Tuner(tune.with_parameters(child_trainable, train_config=train_config, num_classes=4),
               run_config=run_config(tmp_path, "builtin"),
               tune_config=tune.TuneConfig(search_alg=searcher, num_samples=2)).fit()
    assert len(searcher.history) == 2 and searcher.updates == 1
    for record in searcher.history:
        assert record["status"] == "ok" and 0 <= record["accuracy"] <= 1
        assert record["iterations"] == 2  # one report per epoch
