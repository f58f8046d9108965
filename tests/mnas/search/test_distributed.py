"""RayExecutor: a real local Ray, fake children (defined inside factories so Ray pickles them by
value), worker deaths, timeouts and a node removed mid-search."""
from __future__ import annotations

import os
import time

import pytest

from mnas.search.history import load_history

ray = pytest.importorskip("ray")

from controllers import create_controller
from mnas.search.ray_pool import RayExecutor, shutdown_ray
from mnas.reward import RewardSpec
from mnas.search.loop import Search
from search_spaces.space import MnasNetSpace

TINY = {"base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 8, "layers": 1},
                 {"kernel": 3, "stride": 2, "expansion": 6, "filters": 16, "layers": 1}],
        "ops": ["dconv", "mbconv3"], "kernels": [3, 5], "se_ratios": [0.0], "skips": ["none"],
        "filter_multipliers": [1.0], "layer_deltas": [0], "stem_filters": 8, "head_filters": 32,
        "input_size": 16, "num_classes": 4}


def make_search(run_dir, *, children, batch=3, space=TINY):
    space = MnasNetSpace.from_dict(space)
    return Search(run_dir, space=space, controller=create_controller("random", space, seed=0),
                  latency=lambda arch: float(sum(b.kernel for b in arch.blocks)),
                  reward=RewardSpec(target_ms=8.0, alpha=-0.07, beta=-0.07, failed_reward=-1.0),
                  children=children, batch=batch)

pytestmark = pytest.mark.ray


def make_trainer(marker_dir=None, *, die_on=None, die_always=False, hang_on=None, sleep=0.0):
    """A fake child: sleeps, optionally kills its worker process (once per arch unless
    die_always, using marker files) or hangs, for architectures matching `die_on`/`hang_on`."""

    def train(arch, config, *, num_classes=None):
        kernels = tuple(b.kernel for b in arch.blocks)
        ops = tuple(b.op + str(b.expansion) for b in arch.blocks)
        if die_on is not None and kernels == die_on:
            marker = os.path.join(marker_dir, "died-" + "-".join(map(str, kernels + ops)))
            if die_always or not os.path.exists(marker):
                open(marker, "a").close()
                os._exit(1)
        if hang_on is not None and kernels == hang_on:
            time.sleep(60)
        time.sleep(sleep)
        return {"accuracy": 0.5 + 0.01 * sum(kernels), "train_loss": 1.0, "epochs": 1.0,
                "images_per_s": 1.0, "wall_time_s": sleep, "params": 10, "macs": 10,
                "status": "ok", "error": None, "pid": os.getpid()}

    return train


@pytest.fixture(scope="module")
def local_ray():
    shutdown_ray()
    yield
    shutdown_ray()


def test_two_workers_run_in_parallel_and_record_the_budget(local_ray, tmp_path):
    executor = RayExecutor(None, trainer=make_trainer(sleep=0.2), workers=2, num_cpus=2)
    assert executor.capacity == 2
    search = make_search(tmp_path, children=10, batch=2)
    search.run(executor, progress=False)
    executor.shutdown()
    records = load_history(tmp_path / "history.jsonl")
    assert len(records) == 10
    trained = [r for r in records if not r.cached]
    assert len({r.worker for r in trained}) == 2
    assert all(r.status == "ok" for r in records)
    assert all(r.attempts == 1 for r in trained)


def test_dead_worker_is_replaced_and_the_child_retried(local_ray, tmp_path):
    executor = RayExecutor(None, trainer=make_trainer(str(tmp_path), die_on=(5, 3)),
                           workers=2, num_cpus=2, retries=2)
    search = make_search(tmp_path, children=12, batch=3)
    search.run(executor, progress=False)
    executor.shutdown()
    records = load_history(tmp_path / "history.jsonl")
    assert len(records) == 12 and all(r.status == "ok" for r in records)
    retried = [r for r in records if r.attempts == 2]
    assert retried and all(r.arch[0].startswith("r1_k5") for r in retried)
    assert executor.replaced >= 1


def test_worker_dying_every_time_is_recorded_failed(local_ray, tmp_path):
    executor = RayExecutor(None, trainer=make_trainer(str(tmp_path), die_on=(5, 5),
                                                      die_always=True),
                           workers=2, num_cpus=2, retries=1)
    search = make_search(tmp_path, children=12, batch=3)
    search.run(executor, progress=False)
    executor.shutdown()
    records = load_history(tmp_path / "history.jsonl")
    assert len(records) == 12
    failed = [r for r in records if r.status == "failed" and not r.cached]
    assert failed and all(r.attempts == 2 and "worker died" in r.error for r in failed)
    assert all(r.reward == -1.0 for r in failed)


def test_child_timeout(local_ray, tmp_path):
    executor = RayExecutor(None, trainer=make_trainer(hang_on=(3, 3)), workers=2, num_cpus=2,
                           child_timeout_s=3.0)
    search = make_search(tmp_path, children=12, batch=3)
    start = time.perf_counter()
    search.run(executor, progress=False)
    executor.shutdown()
    assert time.perf_counter() - start < 40
    records = load_history(tmp_path / "history.jsonl")
    assert len(records) == 12
    timeouts = [r for r in records if r.status == "timeout" and not r.cached]
    assert timeouts and all(r.arch[0].startswith("r1_k3") for r in timeouts)


def test_bad_config_in_worker_stops_the_search(local_ray, tmp_path):
    def broken(arch, config, *, num_classes=None):
        raise ValueError("child_training.data.path: no such file")

    executor = RayExecutor(None, trainer=broken, workers=1, num_cpus=2)
    search = make_search(tmp_path, children=4)
    with pytest.raises(ValueError, match="no such file"):
        search.run(executor, progress=False)
    executor.shutdown()


@pytest.mark.slow
def test_two_node_cluster_survives_losing_a_node(tmp_path):
    from ray.cluster_utils import Cluster

    shutdown_ray()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker_node = cluster.add_node(num_cpus=1)
    try:
        cluster.wait_for_nodes()
        executor = RayExecutor(None, trainer=make_trainer(sleep=0.5), address=cluster.address,
                               retries=3)
        assert executor.capacity == 2
        search = make_search(tmp_path, children=16, batch=2,
                             space={**TINY, "layer_deltas": [0, 1]})
        original_tell = search.tell
        removed = []

        def tell(trial, outcome):  # remove the second node mid-child, after >= 4 children
            record = original_tell(trial, outcome)
            other = not outcome.worker.startswith(worker_node.node_id[:8])
            if len(search.records) >= 4 and other and not removed:
                cluster.remove_node(worker_node)
                removed.append(len(search.records))
            return record

        search.tell = tell
        search.run(executor, progress=False)
        executor.shutdown()
        records = load_history(tmp_path / "history.jsonl")
        assert len(records) == 16 and all(r.status == "ok" for r in records)
        assert sorted(r.index for r in records) == list(range(16))
        assert removed and len({r.worker.split("/")[0] for r in records[:removed[0]]
                                if not r.cached}) == 2
        assert any(r.attempts == 2 for r in records)  # the child lost with the node re-ran
    finally:
        shutdown_ray()
        cluster.shutdown()
