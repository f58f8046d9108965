"""Issue 20, processes and resources: two searches in one run dir, children out of memory and
SIGTERM under Ray, as a hostile user (or a cluster) would cause them. Each test failed on the code
before the fix. (Inputs: test_hostile.py.)"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mnas.search.history import load_history

from .conftest import ROOT, TINY, _cli, _config, _fake_result, _one_line, search


# -- 1. one run per directory ----------------------------------------------------------------------
_HOLDER = ("import fcntl, os, sys, time\n"
           "f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
           "f.seek(0); f.truncate(); f.write(str(os.getpid())); f.flush()\n"
           "print('held', flush=True); time.sleep(600)\n")


def _hold_lock(run_dir: Path) -> subprocess.Popen[str]:
    """Another process holding the run dir's lock, as a running search does."""
    run_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir / ".lock")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_second_search_in_a_locked_run_dir_is_refused_naming_the_holder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], resume: bool) -> None:
    config, run_dir = _config(tmp_path), tmp_path / "run"
    if resume:
        assert search(config, "--run-dir", run_dir, "--set", "budget.children=2") == 0
        capsys.readouterr()
    before = (run_dir / "history.jsonl").read_bytes() if resume else b""
    holder = _hold_lock(run_dir)
    try:
        args = ["--resume"] if resume else []
        assert search(config, "--run-dir", run_dir, *args) == 2
        _one_line(capsys, str(run_dir), f"pid {holder.pid}", "another search")
    finally:
        holder.kill()
        holder.wait()
    history = run_dir / "history.jsonl"
    assert (history.read_bytes() if history.exists() else b"") == before  # nothing written


def test_a_killed_run_never_blocks_its_own_resume(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The lock dies with its process (SIGKILL included): the resume then runs."""
    config, run_dir = _config(tmp_path), tmp_path / "run"
    assert search(config, "--run-dir", run_dir, "--set", "budget.children=2") == 0
    holder = _hold_lock(run_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert search(config, "--run-dir", run_dir, "--resume") == 0
    assert [r.index for r in load_history(run_dir / "history.jsonl")] == list(range(4))


@pytest.mark.slow
@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_two_searches_at_once_record_the_budget_once(tmp_path: Path, resume: bool) -> None:
    """Two `mnas search --run-dir X` (or two resumes) started together: one runs, the other is
    refused with the holder's PID, and the history holds every index exactly once."""
    config, run_dir = _config(tmp_path, budget={"children": 8, "batch": 2}), tmp_path / "run"
    if resume:
        assert _cli(config, "--run-dir", run_dir, "--local", "--set",
                    "budget.children=3").returncode == 0
    cmd = [sys.executable, "-m", "mnas.cli", "search", str(config), "--run-dir", str(run_dir),
           "--local", "--no-progress"] + (["--resume"] if resume else [])
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    # the lock, or (fresh, when the second starts after the first's first record) the history
    assert ("another search is running" in refused and "pid " in refused) \
        or (not resume and "already holds a search" in refused), refused
    indexes = [r.index for r in load_history(run_dir / "history.jsonl")]
    assert indexes == list(range(8))


# -- 2. children out of memory ---------------------------------------------------------------------

def _hungry(arch: Any) -> bool:
    return arch.blocks[0].kernel == 5


def test_local_child_out_of_memory_is_recorded_and_the_search_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A --local child that keeps allocating (address space only, so the test machine never
    runs short) fails alone as "oom" instead of growing until the kernel kills the driver; a
    resume never trains it again."""
    import numpy as np

    import mnas.training.trainer as trainer

    calls: list[tuple[str, ...]] = []

    def train(arch: Any, config: Any, *, num_classes: int | None = None) -> dict[str, Any]:
        from search_spaces.blockstrings import encode_arch

        calls.append(tuple(encode_arch(arch)))
        if _hungry(arch):
            held = [np.empty(4 * 1024 ** 3, dtype=np.uint8) for _ in range(256)]  # 1 TiB
            del held
        return _fake_result(arch)

    monkeypatch.setattr(trainer, "train_child", train)
    space = {**TINY["search_space"], "kernels": [3, 5], "ops": ["dconv"], "se_ratios": [0.0],
             "skips": ["none"], "filter_multipliers": [1.0], "layer_deltas": [0]}
    config = _config(tmp_path, search_space=space, controller={"name": "random"},
                     budget={"children": 6, "batch": 2})
    run_dir = tmp_path / "run"
    assert search(config, "--run-dir", run_dir) == 0
    records = load_history(run_dir / "history.jsonl")
    hungry = [r for r in records if r.arch[0].split("_")[1] == "k5"]
    assert len(records) == 6 and hungry, records
    trained = [r for r in hungry if not r.cached]
    assert all(r.status == "failed" and r.error.startswith("oom") for r in trained)
    assert all(r.status == "ok" for r in records if r not in hungry)
    before = len(calls)
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=12") == 0
    again = [a for a in calls[before:] if "k5" in a[0]]
    assert not again  # the failed architecture is never trained again


@pytest.mark.slow
@pytest.mark.ray
def test_ray_child_out_of_memory_is_recorded_failed_and_the_search_goes_on(tmp_path: Path) -> None:
    """Ray's memory monitor kills a child's worker: `ray.get` raises OutOfMemoryError (raised
    here from `ray.get` for the hungry architectures, as Ray does). Each attempt is retried like
    a dead worker, then the child is recorded failed ("oom"); nothing is fatal."""
    ray = pytest.importorskip("ray")
    from controllers import create_controller
    from mnas.search.loop import RewardSpec, Search
    from mnas.search.ray_pool import RayExecutor, shutdown_ray
    from search_spaces.space import MnasNetSpace

    def train(arch: Any, config: Any, *, num_classes: int | None = None) -> dict[str, Any]:
        result = {"status": "ok", "accuracy": 0.5, "train_loss": 1.0, "epochs": 1.0,
                  "images_per_s": 1.0, "wall_time_s": 0.0, "params": 10, "macs": 10,
                  "error": None}
        result["hungry"] = arch.blocks[0].kernel == 5
        return result

    space = MnasNetSpace.from_dict({**TINY["search_space"], "kernels": [3, 5], "ops": ["dconv"],
                                    "se_ratios": [0.0], "skips": ["none"],
                                    "filter_multipliers": [1.0], "layer_deltas": [0]})
    shutdown_ray()
    executor = RayExecutor(None, trainer=train, workers=2, retries=1, num_cpus=2)
    original = executor._get

    def get(ref: Any) -> Any:
        result = original(ref)
        if isinstance(result, dict) and result.get("hungry"):
            raise ray.exceptions.OutOfMemoryError("Task was killed due to the node running low "
                                                  "on memory.")
        return result

    executor._get = get  # type: ignore[method-assign]
    try:
        search = Search(tmp_path / "run", space=space,
                        controller=create_controller("random", space, seed=0),
                        latency=lambda arch: 1.0, reward=RewardSpec(1.0, -0.07, -0.07, -1.0),
                        children=6, batch=2)
        search.run(executor, progress=False)
        search.close()
    finally:
        executor.shutdown()
        shutdown_ray()
    records = load_history(tmp_path / "run" / "history.jsonl")
    hungry = [r for r in records if "_k5_" in r.arch[0] and not r.cached]
    assert len(records) == 6 and hungry
    assert all(r.status == "failed" and r.error.startswith("oom") and r.attempts == 2
               for r in hungry)


# -- 5. SIGTERM under Ray --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.ray
def test_sigterm_under_ray_exits_143_with_the_resume_command(tmp_path: Path) -> None:
    config = _config(tmp_path, budget={"children": 60, "batch": 4}, ray={"workers": 1})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mnas.cli", "search", str(config),
                             "--run-dir", str(run_dir), "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    history = run_dir / "history.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if history.exists() and history.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "--resume" in err and "Traceback" not in err
