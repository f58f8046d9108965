"""The search loop (ask/tell, cache, failures, checkpoint + history resume) without Ray.

Children are "trained" by small fake trainers defined here (accuracy from the architecture), so
these tests check the loop's bookkeeping, not learning."""
from __future__ import annotations

import json
import os

import pytest
import torch

from controllers import create_controller
from mnas.search.checkpoint import load_checkpoint
from mnas.search.executor import LocalExecutor, Outcome
from mnas.search.history import HistoryRecord, HistoryWriter, load_history
from mnas.reward import RewardSpec
from mnas.search.loop import Search
from search_spaces.space import MnasNetSpace

TINY = {"base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 8, "layers": 1},
                 {"kernel": 3, "stride": 2, "expansion": 6, "filters": 16, "layers": 1}],
        "ops": ["dconv", "mbconv3"], "kernels": [3, 5], "se_ratios": [0.0], "skips": ["none"],
        "filter_multipliers": [1.0], "layer_deltas": [0], "stem_filters": 8, "head_filters": 32,
        "input_size": 16, "num_classes": 4}  # 4 x 4 = 16 architectures: repeats are frequent


def fake_train(arch, config, *, num_classes=None):
    """Deterministic fake accuracy from the architecture; records each call."""
    fake_train.calls.append(arch)
    acc = 0.5 + 0.05 * sum(b.kernel for b in arch.blocks) / 10
    return {"accuracy": acc, "train_loss": 1.0, "epochs": 1.0, "images_per_s": 1.0,
            "wall_time_s": 0.01, "params": 100, "macs": 1000, "status": "ok", "error": None}


fake_train.calls = []


def fake_latency(arch) -> float:
    return float(sum(b.kernel * b.expansion for b in arch.blocks))


def make_search(run_dir, *, children=12, batch=3, resume=False, controller="random", space=TINY,
                seed=0):
    space = MnasNetSpace.from_dict(space)
    ctrl = create_controller(controller, space, seed=seed)
    return Search(run_dir, space=space, controller=ctrl, latency=fake_latency,
                  reward=RewardSpec(target_ms=20.0, alpha=-0.07, beta=-0.07, failed_reward=-1.0),
                  children=children, batch=batch, resume=resume)


@pytest.fixture(autouse=True)
def _reset_calls():
    fake_train.calls.clear()


def test_run_records_budget_and_caches_repeats(tmp_path):
    search = make_search(tmp_path, children=30, batch=4)
    summary = search.run(LocalExecutor(None, trainer=fake_train), progress=False)
    search.close()
    records = load_history(tmp_path / "history.jsonl")
    assert summary.children == len(records) == 30
    archs = [tuple(r.arch) for r in records]
    cached = [r for r in records if r.cached]
    assert cached, "a 16-architecture space must repeat within 30 samples"
    assert len(fake_train.calls) == 30 - len(cached) == len(set(archs))
    for r in cached:  # a repeat carries its first result, unretrained
        first = next(o for o in records if o.arch == r.arch and not o.cached)
        assert r.accuracy == first.accuracy and r.reward == first.reward
    assert sorted(r.index for r in records) == list(range(30))
    assert {"index", "arch", "actions", "accuracy", "latency_ms", "reward", "status", "params",
            "macs", "train_time_s", "wall_time_s", "worker", "attempts", "error",
            "cached"} <= set(json.loads((tmp_path / "history.jsonl").read_text().split("\n")[0]))
    assert search.updates == 30 // 4
    state = load_checkpoint(tmp_path)
    assert state.in_flight == [] and state.next_index == 30 and len(state.pending) == 30 % 4


class FifoPool:
    """An executor with 2 slots that finishes its oldest child on each wait; it fails the test if
    the loop ever gives it more children than slots."""

    capacity = 2

    def __init__(self) -> None:
        self.running: list = []
        self.submitted: list = []

    def submit(self, trial) -> None:
        assert len(self.running) < self.capacity, "the loop over-filled the executor"
        self.running.append(trial)
        self.submitted.append(trial)

    def wait(self):
        trial = self.running.pop(0)
        return [(trial, Outcome(fake_train(trial.spec, None), "w", 1, 0.01))]

    def shutdown(self) -> None:
        pass


def test_the_last_children_are_sampled_together_and_trained_longest_first(tmp_path):
    space = {**TINY, "layer_deltas": [0, 1], "ops": ["dconv", "mbconv3", "mbconv6"],
             "kernels": [3, 5, 7]}  # 324 architectures: seed 18 samples no repeat in 12, and
    search = make_search(tmp_path, children=12, batch=4, space=space, seed=18)  # no sorted tail
    pool = FifoPool()
    search.run(pool, progress=False)
    records = load_history(tmp_path / "history.jsonl")
    assert len(records) == 12 and not any(r.cached for r in records)
    order = [t.index for t in pool.submitted]
    assert order[:9] == list(range(9))  # sampled one slot at a time, as they free up
    tail = pool.submitted[9:]  # the last 3 (fit in one slot free now plus 2 more): all at once
    assert sorted(t.index for t in tail) == [9, 10, 11]
    latency = [fake_latency(t.spec) for t in tail]
    assert latency == sorted(latency, reverse=True)
    assert latency != [fake_latency(t.spec) for t in sorted(tail, key=lambda t: t.index)]
    local = make_search(tmp_path / "local", children=12, batch=4, space=space, seed=18)
    local.run(LocalExecutor(None, trainer=fake_train), progress=False)  # one slot: no tail
    assert [r.arch for r in local.records] == [r.arch for r in
                                                   sorted(records, key=lambda r: r.index)]


def test_failed_and_raising_children_get_failed_reward(tmp_path):
    def flaky(arch, config, *, num_classes=None):
        if arch.blocks[0].kernel == 5:
            raise RuntimeError("boom")
        result = fake_train(arch, config)
        if arch.blocks[1].kernel == 5:
            result.update(status="diverged", accuracy=float("nan"))
        return result

    search = make_search(tmp_path, children=16, space={**TINY, "ops": ["dconv"]})
    search.run(LocalExecutor(None, trainer=flaky), progress=False)
    records = load_history(tmp_path / "history.jsonl")  # strict JSON: NaN stored as null
    statuses = {r.status for r in records}
    assert statuses == {"ok", "failed", "diverged"}
    for r in records:
        if r.status != "ok":
            assert r.reward == -1.0
    failed = next(r for r in records if r.status == "failed")
    assert "RuntimeError: boom" in failed.error


def test_rewards_reach_the_controller_in_batches(tmp_path):
    search = make_search(tmp_path, children=10, batch=4, controller="rnn")
    seen = []
    original = search.controller.update
    search.controller.update = lambda s, r: seen.append(list(r)) or original(s, r)
    search.run(LocalExecutor(None, trainer=fake_train), progress=False)
    records = load_history(tmp_path / "history.jsonl")
    assert [len(b) for b in seen] == [4, 4]
    assert seen[0] == [r.reward for r in records[:4]]


def test_out_of_order_tell(tmp_path):
    search = make_search(tmp_path, children=4, batch=2, space={**TINY, "layer_deltas": [0, 1]})
    trials = search.ask(4)
    assert len(trials) == search.in_flight
    for trial in reversed(trials):
        result = fake_train(trial.spec, None)
        search.tell(trial, Outcome(result, "w", 1, 0.1))
    assert [r.index for r in search.records][:len(trials)] == [t.index for t in trials][::-1]
    with pytest.raises(ValueError, match="not in flight"):
        search.tell(trials[0], Outcome({}, "w", 1, 0.1))


def test_resume_after_crash_keeps_history_and_reruns_in_flight(tmp_path):
    space = {**TINY, "layer_deltas": [0, 1], "ops": ["dconv", "mbconv3", "mbconv6"]}
    search = make_search(tmp_path, children=12, batch=3, space=space, controller="rnn")
    trials = search.ask(4)
    for trial in trials[:2]:
        search.tell(trial, Outcome(fake_train(trial.spec, None), "w", 1, 0.1))
    search._history.close()  # the process "dies" here with trials[2:] in flight
    # a kill mid-write leaves a torn line behind
    with open(tmp_path / "history.jsonl", "a") as handle:
        handle.write('{"index": 99, "arch": ["r1_k3')
    fake_train.calls.clear()
    resumed = make_search(tmp_path, children=12, batch=3, space=space, controller="rnn",
                          resume=True)
    assert len(resumed.records) == 2 and resumed.in_flight == 2
    assert resumed.controller.state_dict()["kind"] == "rnn"
    resumed.run(LocalExecutor(None, trainer=fake_train), progress=False)
    records = load_history(tmp_path / "history.jsonl")
    assert len(records) == 12
    indices = [r.index for r in records]
    assert len(set(indices)) == 12
    assert {t.index for t in trials[2:]} <= set(indices)  # in-flight ones were re-run
    first_two = {tuple(r.arch) for r in records[:2]}
    assert first_two.isdisjoint(tuple(_strings(a)) for a in fake_train.calls)  # not retrained


def _strings(arch):
    from search_spaces.blockstrings import encode_arch
    return encode_arch(arch)


def test_resume_rewards_children_recorded_after_the_last_checkpoint(tmp_path):
    """Killed between the history append and the checkpoint: the child is in both the history
    and the checkpoint's in-flight list; the resume must count it once and feed its reward."""
    search = make_search(tmp_path, children=6, batch=2, controller="rnn",
                         space={**TINY, "layer_deltas": [0, 1]})
    trials = search.ask(2)
    # write the record, but "die" before the checkpoint is replaced
    search._checkpoint = lambda: None
    search.tell(trials[0], Outcome(fake_train(trials[0].spec, None), "w", 1, 0.1))
    search._history.close()
    resumed = make_search(tmp_path, children=6, batch=2, controller="rnn", resume=True,
                          space={**TINY, "layer_deltas": [0, 1]})
    assert len(resumed.records) == 1 and resumed.in_flight == 1
    assert [t.index for t, _ in resumed._pending] == [trials[0].index]
    resumed.run(LocalExecutor(None, trainer=fake_train), progress=False)
    assert len(load_history(tmp_path / "history.jsonl")) == 6
    assert resumed.updates == 3


def test_resume_with_a_larger_budget_continues(tmp_path):
    make_search(tmp_path, children=5).run(LocalExecutor(None, trainer=fake_train), progress=False)
    resumed = make_search(tmp_path, children=9, resume=True)
    assert resumed.next_index == 5
    resumed.run(LocalExecutor(None, trainer=fake_train), progress=False)
    assert [r.index for r in load_history(tmp_path / "history.jsonl")] == list(range(9))


def test_checkpoint_is_weights_only_loadable(tmp_path):
    search = make_search(tmp_path, children=3, controller="rnn")
    search.ask(2)
    data = torch.load(tmp_path / "controller.pt", weights_only=True)
    assert len(data["in_flight"]) == 2 and "controller" in data
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_history_torn_line_is_truncated_and_corruption_is_an_error(tmp_path):
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as writer:
        writer.append(HistoryRecord(index=0, arch=("a",), status="ok", reward=0.0,
                                    accuracy=float("nan")))
        writer.append(HistoryRecord(index=1, arch=("b",), status="failed", reward=0.0))
    good = path.read_bytes()
    path.write_bytes(good + b'{"index": 2, "ar')
    assert [r.index for r in load_history(path)] == [0, 1]
    assert path.read_bytes() != good  # not repaired without repair=True
    assert [r.index for r in load_history(path, repair=True)] == [0, 1]
    assert path.read_bytes() == good
    assert json.loads(good.splitlines()[0])["accuracy"] is None
    path.write_bytes(b'garbage\n' + good)
    with pytest.raises(ValueError, match="line 1"):
        load_history(path)


# -- the `mnas search` command -------------------------------------------------------------------
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]

#: The shared tiny search (tiny_search.yaml) with a 40-child budget: long enough to kill.
TINY_CONFIG = {**yaml.safe_load((Path(__file__).parent / "tiny_search.yaml").read_text()),
               "budget": {"children": 40, "batch": 4}}


def write_config(tmp_path, **sections):
    data = {**TINY_CONFIG, **sections}
    data["output"] = {**TINY_CONFIG["output"], "dir": str(tmp_path / "runs")}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def mnas_cmd(*args, local=True):
    return [sys.executable, "-m", "mnas.cli", "search", *map(str, args), "--no-progress"] \
        + (["--local"] if local else [])


def run_cli(*args, timeout=180, local=True):
    return subprocess.run(mnas_cmd(*args, local=local), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    missing = run_cli(tmp_path / "nope.yaml")
    assert missing.returncode == 2 and "no such experiment config" in missing.stderr
    config = write_config(tmp_path)
    bad = run_cli(config, "--set", "budget.children=-1")
    assert bad.returncode == 2 and "budget.children" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    no_dir = run_cli(config, "--resume")
    assert no_dir.returncode == 2 and "--run-dir" in no_dir.stderr


@pytest.mark.slow
def test_cli_refuses_reusing_or_resuming_with_another_config(tmp_path):
    config = write_config(tmp_path, budget={"children": 3, "batch": 2})
    run_dir = tmp_path / "run"
    first = run_cli(config, "--run-dir", run_dir)
    assert first.returncode == 0, first.stderr
    assert len(load_history(run_dir / "history.jsonl")) == 3
    again = run_cli(config, "--run-dir", run_dir)
    assert again.returncode == 2 and "--resume" in again.stderr
    other = run_cli(config, "--run-dir", run_dir, "--resume", "--set", "seed=5")
    assert other.returncode == 2 and "seed" in other.stderr
    more = run_cli(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=5")
    assert more.returncode == 0, more.stderr
    assert [r.index for r in load_history(run_dir / "history.jsonl")] == list(range(5))


def _kill_when(proc, path, lines):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= lines:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("seed, local", [
    (0, True), (1, True), pytest.param(2, False, marks=pytest.mark.ray)])
def test_sigkill_then_resume_records_exactly_the_budget(tmp_path, seed, local):
    """Kill the driver with SIGKILL at a random point, then resume: every child recorded before
    the kill is kept (byte for byte) and none is trained again. With Ray (local=False) the
    driver's whole process group is killed, as a terminal or scheduler would."""
    import random

    config = write_config(tmp_path, controller={"name": "random"})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(mnas_cmd(config, "--run-dir", run_dir, local=local), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    kill_at = random.Random(seed).randint(3, 30)
    assert _kill_when(proc, run_dir / "history.jsonl", kill_at), "search ended too early"
    time.sleep(random.Random(seed).random() * 0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and anything it started (Ray's agents)
    proc.wait()
    before = load_history(run_dir / "history.jsonl")
    resumed = run_cli(config, "--run-dir", run_dir, "--resume", local=local)
    assert resumed.returncode == 0, resumed.stderr
    after = load_history(run_dir / "history.jsonl")
    assert len(after) == 40
    assert after[:len(before)] == before
    assert sorted(r.index for r in after) == list(range(len(after)))  # none lost/duplicated
    first = {}
    for r in after:  # an architecture is trained at most once; repeats are cached
        if not r.cached:
            assert tuple(r.arch) not in first
            first[tuple(r.arch)] = r


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_and_resumes(tmp_path, signum, code):
    """SIGTERM / SIGINT (Ctrl-C): a clean stop that keeps the state (exit 143 / 130, a resume
    hint, no traceback), then --resume completes exactly the budget keeping every record."""
    config = write_config(tmp_path, controller={"name": "rnn"})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(mnas_cmd(config, "--run-dir", run_dir), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _kill_when(proc, run_dir / "history.jsonl", 5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and "--resume" in err and "Traceback" not in err
    before = load_history(run_dir / "history.jsonl")
    resumed = run_cli(config, "--run-dir", run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    after = load_history(run_dir / "history.jsonl")
    assert len(after) == 40 and after[:len(before)] == before


def test_reference_markers_price_mobilenet_v2s_relu_twin_when_relu6_is_not_in_the_table():
    from types import SimpleNamespace

    from mnas.search.runner import reference_latencies

    class ReluTable:  # a table of the (ReLU) space: no ReLU6 layer in it
        def predict(self, arch):
            if any(b.act != "relu" for b in arch.blocks):
                raise KeyError("no such layer in the table")
            return fake_latency(arch)

    config = SimpleNamespace(space=MnasNetSpace())
    marks = dict(reference_latencies(ReluTable(), config))
    assert set(marks) == {"mnasnet_a1", "mnasnet_b1", "mobilenet_v2 (relu)"}
    priced_all = dict(reference_latencies(SimpleNamespace(predict=fake_latency), config))
    assert set(priced_all) == {"mnasnet_a1", "mnasnet_b1", "mobilenet_v2"}
