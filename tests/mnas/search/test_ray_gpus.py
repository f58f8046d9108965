"""Children on GPUs through Ray, on a machine without any: Ray is told it has 2 GPUs
(`ray.init(num_gpus=2)` only declares a resource count), actors ask for `ray.gpus_per_child`, and
fake children report the GPU ids Ray assigned them and the device they were told to train on."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest

from mnas.config.loader import load_section
from mnas.config.schema import RayConfig, config_from_dict
from mnas.search.ray_pool import assign_device, pool_capacity
from mnas.search.runner import create_executor
from mnas.training.trainer import TrainConfig

SYNTH = {"name": "synthetic", "synthetic_samples": 64, "input_size": 8}


@pytest.mark.parametrize("workers,cpus,gpus,per_child,expected", [
    (0, 8, 2, 1.0, 2), (0, 8, 2, 0.5, 4), (3, 8, 2, 0.5, 3), (9, 8, 2, 0.5, 4),
    (0, 8, 1, 1 / 3, 3), (0, 2, 2, 0.5, 2), (0, 8, 0, 0.0, 8)])
def test_pool_capacity_never_exceeds_what_the_gpus_place(workers, cpus, gpus, per_child,
                                                         expected) -> None:
    assert pool_capacity(workers, cpus, 1.0, gpus, per_child) == expected


def test_gpus_per_child_without_gpus_in_the_cluster_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"ray.gpus_per_child: 1 GPU per child but the Ray "
                                         r"cluster has 0 GPU"):
        pool_capacity(0, 8, 1.0, 0, 1.0)


@pytest.mark.parametrize("value", [-0.5, 1.5])
def test_gpus_per_child_values(value: float) -> None:
    with pytest.raises(ValueError, match="ray.gpus_per_child"):
        load_section(RayConfig, {"gpus_per_child": value}, "ray")
    assert RayConfig(gpus_per_child=0.25).gpus_per_child == 0.25
    assert RayConfig(gpus_per_child=2).gpus_per_child == 2


def test_cuda_children_on_ray_need_gpus_per_child() -> None:
    config = config_from_dict({"child_training": {"device": "cuda:0", "data": SYNTH}})
    with pytest.raises(ValueError, match=r"ray.gpus_per_child: 0, but child_training.device"):
        create_executor(config)  # refused before Ray starts


def test_actor_device_from_its_gpu_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    config = TrainConfig()
    assert assign_device(config, ["1"]).device == "cuda:0"
    assert assign_device(replace_device(config, "cuda:1"), ["1"]).device == "cuda:0"
    assert assign_device(config, []).device == "cpu"  # no GPU from Ray: none used
    assert assign_device(replace_device(config, "cpu"), ["1"]).device == "cpu"
    assert assign_device(None, ["1"]) is None  # a custom trainer's own config passes through


def replace_device(config: TrainConfig, device: str) -> TrainConfig:
    from dataclasses import replace
    return replace(config, device=device)


# --- a real local Ray with 2 declared GPUs ------------------------------------------------------

@dataclass
class Trial:
    spec: int


def make_trainer(sleep: float):
    """A fake child (defined in a factory so Ray pickles it by value)."""

    def train(arch, config, *, num_classes=None):
        import ray
        start = time.time()
        time.sleep(sleep)
        return {"accuracy": 0.5, "status": "ok", "error": None, "start": start,
                "end": time.time(), "gpu_ids": [str(i) for i in ray.get_gpu_ids()],
                "device": config.device, "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}

    return train


def run_all(executor, n: int) -> list[dict]:
    for i in range(n):
        executor.submit(Trial(i))
    results: list[dict] = []
    while len(results) < n:
        results.extend(outcome.result for _trial, outcome in executor.wait())
    return results


@pytest.fixture(scope="module")
def gpu_ray():
    ray = pytest.importorskip("ray")
    from mnas.search.ray_pool import init_ray, shutdown_ray

    shutdown_ray()
    init_ray(num_cpus=4, num_gpus=2)
    yield ray
    shutdown_ray()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _t, delta in events:
        now += delta
        best = max(best, now)
    return best


@pytest.mark.ray
def test_whole_gpu_actors_get_distinct_gpus(gpu_ray) -> None:
    from mnas.search.ray_pool import RayExecutor

    executor = RayExecutor(TrainConfig(), trainer=make_trainer(0.2), workers=0,
                           cpus_per_child=1.0, gpus_per_child=1.0)
    try:
        assert executor.capacity == 2  # 4 CPUs, but only 2 GPUs
        results = run_all(executor, 6)
    finally:
        executor.shutdown()
    assert sorted({tuple(r["gpu_ids"]) for r in results}) == [("0",), ("1",)]
    assert all(r["device"] == "cuda:0" and r["visible"] == r["gpu_ids"][0] for r in results)
    for gpu in ("0", "1"):  # one child at a time on each GPU
        assert max_overlap([(r["start"], r["end"]) for r in results
                            if r["gpu_ids"] == [gpu]]) == 1


@pytest.mark.ray
@pytest.mark.slow  # 4 actors start: 8-15 s on this shared machine
def test_half_gpu_actors_pack_two_per_gpu_and_never_oversubscribe(gpu_ray) -> None:
    from mnas.search.ray_pool import RayExecutor

    executor = RayExecutor(TrainConfig(), trainer=make_trainer(0.3), workers=8,
                           cpus_per_child=0.5, gpus_per_child=0.5)
    try:
        assert executor.capacity == 4  # 8 asked for, 4 fit on 2 GPUs
        assert gpu_ray.available_resources().get("GPU", 0.0) < 1e-6  # all GPU shares taken
        results = run_all(executor, 8)
    finally:
        executor.shutdown()
    for gpu in ("0", "1"):
        on_gpu = [(r["start"], r["end"]) for r in results if r["gpu_ids"] == [gpu]]
        assert on_gpu and max_overlap(on_gpu) <= 2
    assert max_overlap([(r["start"], r["end"]) for r in results]) <= 4


@pytest.mark.ray
def test_actors_without_gpus_train_on_the_cpu(gpu_ray) -> None:
    from mnas.search.ray_pool import RayExecutor

    executor = RayExecutor(TrainConfig(), trainer=make_trainer(0.0), workers=1)
    try:
        [result] = run_all(executor, 1)
    finally:
        executor.shutdown()
    assert result["gpu_ids"] == [] and result["device"] == "cpu"
