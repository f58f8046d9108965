"""Experiment configs: the generic loader, errors naming file and key, overrides, paths,
save/load round trips, the resume fingerprint, and every bundled experiment file."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from latency.options import FlopsOptions
from mnas.config.schema import (PATH_KEYS, BudgetConfig, ControllerConfig, ExperimentConfig,
                                RewardConfig, config_fingerprint, config_from_dict,
                                config_to_dict, fingerprint_diff, load_config, parse_overrides,
                                save_config)
from mnas.training.trainer import TrainConfig

REPO = Path(__file__).resolve().parents[3]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_build_and_resolve_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = config_from_dict({})
    assert isinstance(config.child_training, TrainConfig)
    assert config.reward.preset == "soft" and config.reward.weights == (-0.07, -0.07)
    assert config.output.dir == str(tmp_path / "runs")
    assert config.space.size == 432 ** 7
    # normalised, every key explicit, with the space's name
    assert config.search_space == {"name": "mnasnet", **config.space.to_dict()}


def test_full_file_loads_with_types_converted(tmp_path):
    path = write(tmp_path, """
name: demo
seed: 3
search_space: {input_size: 32, stem_stride: 1, num_classes: 10}
controller: {name: rnn, algorithm: ppo, lr: 1e-3, band: [0.9, 1]}
latency: {predictor: flops, kwargs: {ms_per_mmac: 20}, target_ms: 5}
reward: {alpha: -0.1, beta: -0.5, failed_reward: -1}
child_training: {epochs: 2, data: {name: synthetic, input_size: 32}}
ray: {workers: 2, child_timeout_s: 60}
budget: {children: 12, batch: 4}
output: {tensorboard: false}
""")
    config = load_config(path)
    assert config.controller.lr == 1e-3 and isinstance(config.controller.lr, float)
    assert config.controller.band == (0.9, 1.0)
    assert config.latency.target_ms == 5.0 and isinstance(config.latency.target_ms, float)
    assert config.latency.kwargs == FlopsOptions(ms_per_mmac=20.0)
    assert config.reward.weights == (-0.1, -0.5) and config.reward.preset is None
    assert config.child_training.epochs == 2.0 and config.child_training.data.input_size == 32
    assert config.space.input_size == 32 and config.space.stem_stride == 1
    assert config.ray.child_timeout_s == 60.0 and config.budget == BudgetConfig(12, 4)
    assert config.output.tensorboard is False and config.output.plot is True


@pytest.mark.parametrize("text, message", [
    ("budget: {children: -3}", "budget.children: expected an integer > 0, got -3"),
    ("budget: {children: 2.5}", "budget.children: expected an integer, got 2.5"),
    ("budget: {kids: 3}", "budget.kids: unknown key (expected one of children, batch)"),
    ("bogus: 1", "bogus: unknown key"),
    ("controller: {name: genetic}", "controller.name: expected one of rnn, random, "
                                    "constrained_random, evolution, got 'genetic'"),
    ("controller: {name: evolution, population_size: 4, sample_size: 5}",
     "controller.sample_size: expected an integer <= population_size (4), got 5"),
    ("controller: {algorithm: a2c}", "controller.algorithm: expected one of reinforce, ppo"),
    ("controller: {lr: fast}", "controller.lr: expected a number, got 'fast'"),
    ("controller: {band: [1.0]}", "controller.band: expected a list of 2 values"),
    ("controller: {band: [1.0, 0.5]}", "controller.band: expected [lo, hi] with 0 <= lo <= hi"),
    ("controller: {tanh_constant: -1}", "controller.tanh_constant: expected a number > 0 or null"),
    ("controller: {baseline_decay: 1.0}", "controller.baseline_decay: expected a number in [0, 1)"),
    ("controller: 5", "controller: expected a mapping, got 5"),
    ("latency: {predictor: magic}", "latency.predictor: expected one of lut, measured, flops, "
                                    "csv_column, ofa_yaml, proxyless_yaml or 'pkg.module:Name', "
                                    "got 'magic'"),
    ("latency: {target_ms: 0}", "latency.target_ms: expected a number > 0, got 0.0"),
    ("latency: {target_ms: .nan}", "latency.target_ms: expected a number, got nan"),
    ("latency: {kwargs: [1]}", "latency.kwargs: expected a mapping"),
    ("reward: {preset: medium}", "reward.preset: expected one of soft, hard or null"),
    ("reward: {preset: soft, alpha: -1, beta: -1}", "reward: preset 'soft' and explicit"),
    ("reward: {alpha: -1}", "reward: give both alpha and beta"),
    ("ray: {workers: -1}", "ray.workers: expected an integer >= 0"),
    ("ray: {cpus_per_child: 0}", "ray.cpus_per_child: expected a number > 0"),
    ("ray: {address: 5}", "ray.address: expected a string or null, got 5"),
    ("output: {plot: maybe}", "output.plot: expected true or false, got 'maybe'"),
    ("name: a/b", "name: expected a non-empty name without '/'"),
    ("seed: true", "seed: expected an integer, got True"),
    ("search_space: {kernels: [4]}", "search_space.kernels"),
    ("search_space: {widths: [1]}", "search_space.widths: unknown key"),
    ("child_training: {epochs: 0}", "child_training.epochs"),
    ("child_training: {optimiser: sgd}", "child_training.optimiser: unknown key"),
    ("child_training: {data: {name: imagenet}}", "child_training.data.name"),
    ("child_training: {data: {val_fraction: '0.5x'}}",
     "child_training.data.val_fraction: expected a number, got '0.5x'"),
])
def test_bad_values_are_one_line_errors_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert "\n" not in text


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("# only a comment\n", "empty file"),
    ("- a\n- b\n", "expected a mapping of sections at the top level, got list"),
    ("budget: {children: 3\n", "invalid YAML"),
    ("a: b: c\n", "invalid YAML"),
    ("x: !!python/object:os.system {}\n", "invalid YAML"),  # safe_load refuses code tags
])
def test_file_level_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "name: ok\nbudget:\n  children: [1,\n")
    with pytest.raises(ValueError, match=r"line \d+, column \d+"):
        load_config(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such experiment config"):
        load_config("/nonexistent/x.yaml")


def test_overrides_apply_and_parse_yaml_scalars(tmp_path):
    path = write(tmp_path, "budget: {children: 10, batch: 2}\n")
    config = load_config(path, ["budget.children=20", "controller.name=random",
                                "controller.band=[0.5, 0.9]", "latency.table=t.json",
                                "search_space.input_size=64", "latency.kwargs.calibration=none",
                                "ray.address=null", "child_training.data.max_train=100"])
    assert config.budget.children == 20 and config.budget.batch == 2
    assert config.controller.name == "random" and config.controller.band == (0.5, 0.9)
    assert config.latency.table == os.path.abspath("t.json")
    assert config.space.input_size == 64 and config.latency.kwargs.calibration == "none"
    assert config.child_training.data.max_train == 100


@pytest.mark.parametrize("override, message", [
    ("budget.kids=3", "--set budget.kids: unknown key 'kids' in budget"),
    ("nothing=3", "--set nothing: unknown key 'nothing' in the top level"),
    ("budget.children.x=3", "budget.children has no sub-keys"),
    ("search_space.depth=3", "search_space.depth: unknown key"),
    ("budget.children", "expected KEY.PATH=VALUE"),
    ("=3", "expected KEY.PATH=VALUE"),
    ("budget.children=[1,", "not valid YAML"),
    ("budget.children=-3", "budget.children: expected an integer > 0, got -3"),
])
def test_bad_overrides(tmp_path, override, message):
    path = write(tmp_path, "name: x\n")
    with pytest.raises(ValueError, match=None) as info:
        load_config(path, [override])
    assert message in str(info.value)


def test_parse_overrides_keeps_text_and_numbers():
    assert parse_overrides(["a.b=1", "c=hello", "d=1.5", "e=true", "f=", "g=x=y"]) == [
        ("a.b", 1), ("c", "hello"), ("d", 1.5), ("e", True), ("f", None), ("g", "x=y")]


def test_relative_paths_resolve_against_cwd(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", """
latency: {table: tables/lut.json}
child_training: {data: {name: npz, path: ../data/d.npz, cache_dir: ~/cache}}
supernet: {checkpoint: sn/c.pt}
output: {dir: out}
""")
    monkeypatch.chdir(tmp_path)
    config = load_config("sub/x.yaml")
    assert config.latency.table == str(tmp_path / "tables" / "lut.json")
    assert config.supernet.checkpoint == str(tmp_path / "sn" / "c.pt")
    assert config.child_training.data.path == str(tmp_path.parent / "data" / "d.npz")
    assert config.child_training.data.cache_dir == os.path.expanduser("~/cache")
    assert config.output.dir == str(tmp_path / "out")
    assert set(PATH_KEYS) == {"child_training.data.path", "child_training.data.val_path",
                              "child_training.data.cache_dir", "latency.table", "evaluator.path",
                              "supernet.checkpoint", "output.dir"}


def _configs() -> list[ExperimentConfig]:
    return [config_from_dict({}),
            config_from_dict({"reward": {"alpha": -0.2, "beta": -0.9}, "controller": {
                "tanh_constant": 2.5, "algorithm": "ppo"}, "latency": {
                "predictor": "my.pkg:Pred", "kwargs": {"a": [1, 2], "b": {"c": None}}}})]


@pytest.mark.parametrize("index", [0, 1])
def test_save_then_load_gives_an_equal_config(tmp_path, monkeypatch, index):
    config = _configs()[index]
    monkeypatch.chdir(tmp_path)  # the saved file is CWD-independent: paths are absolute
    path = save_config(config, tmp_path / "config.yaml")
    assert load_config(path) == config
    assert config_fingerprint(load_config(path)) == config_fingerprint(config)
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp file left
    assert yaml.safe_load(path.read_text()) == config_to_dict(config)


def test_fingerprint_ignores_only_resume_mutable_keys():
    base = config_from_dict({})
    same = [replace(base, name="other"), replace(base, budget=replace(base.budget, children=999)),
            replace(base, ray=replace(base.ray, workers=7, address="10.0.0.1:6379")),
            replace(base, output=replace(base.output, dir="/elsewhere", plot=False)),
            config_from_dict({"child_training": {"device": "cuda:1"}})]  # moved to a GPU box
    for config in same:
        assert config_fingerprint(config) == config_fingerprint(base)
        assert fingerprint_diff(base, config) == []
    different = [replace(base, seed=1), replace(base, budget=replace(base.budget, batch=3)),
                 replace(base, controller=replace(base.controller, lr=0.01)),
                 replace(base, reward=RewardConfig(preset="hard")),
                 config_from_dict({"search_space": {"input_size": 32}}),
                 config_from_dict({"child_training": {"epochs": 1}}),
                 config_from_dict({"child_training": {"precision": "bf16"}})]
    prints = {config_fingerprint(c) for c in different}
    assert len(prints) == len(different) and config_fingerprint(base) not in prints
    assert fingerprint_diff(base, different[2]) == [
        f"controller.lr: {base.controller.lr!r} -> 0.01"]
    assert len(config_fingerprint(base)) == 16


def test_config_defaults_match_the_controllers_own():
    controllers = pytest.importorskip("controllers")
    defaults = ControllerConfig()
    for name, cls in controllers.CONTROLLERS.items():
        own = cls.Options()
        for key in controllers.controller_options(name):
            assert getattr(defaults, key) == getattr(own, key), (name, key)


class _FlatPredictor:
    def predict(self, arch):
        return 1.0

    def predict_many(self, archs):
        return np.ones(len(archs))


@pytest.mark.parametrize("name", ["rnn", "random", "constrained_random"])
def test_factory_kwargs_are_accepted_by_create_controller(name):
    controllers = pytest.importorskip("controllers")
    config = config_from_dict({"controller": {"name": name, "band": [0.1, 10]},
                               "search_space": {"input_size": 32}})
    controller = controllers.create_controller(
        name, config.space, seed=config.seed, predictor=_FlatPredictor(),
        target_ms=config.latency.target_ms, options=config.controller)
    assert len(controller.sample(2)) == 2


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_bundled_experiment_files_are_valid(path, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(path)
    space = config.space
    arch = space.sample(np.random.default_rng(0))
    assert space.from_strings(space.to_strings(arch)) == arch  # lossless text, every space
    assert space.decode(space.encode(arch)) == arch
    assert config.budget.children >= config.budget.batch
    saved = save_config(config, tmp_path / "config.yaml")
    assert load_config(saved) == config


def test_bundled_experiments_exist():
    names = {p.name for p in EXPERIMENTS}
    assert {"quickstart.yaml", "cifar10.yaml", "mnasnet_imagenet.yaml",
            "random_baseline.yaml"} <= names


def test_random_baseline_differs_from_quickstart_only_in_controller_and_name():
    quick = config_to_dict(load_config(REPO / "experiments" / "quickstart.yaml"))
    rand = config_to_dict(load_config(REPO / "experiments" / "random_baseline.yaml"))
    assert rand["controller"]["name"] == "random"
    for key in quick:
        if key not in ("name", "controller", "output"):
            assert quick[key] == rand[key], key


def test_cifar10_data_path_is_the_shared_copy_when_run_from_the_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config("experiments/cifar10.yaml")
    assert config.child_training.data.path == str(REPO.parent / "shared" / "data" /
                                                  "cifar10-jpeg-train.npz")
    assert config.latency.table == str(REPO / "runs" / "latency" / "cifar10_32.json")
