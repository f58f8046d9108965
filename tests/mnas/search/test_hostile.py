"""Issue 20: faults found by using `mnas search` as a hostile user would. Each test failed on the
code before the fix: two searches in one run dir, children out of memory, unusable latencies,
runaway rewards, SIGTERM under Ray, and inputs that ended in a traceback instead of one line.

(YAML alias bombs and deep nesting: tests/mnas/config/test_safe_yaml.py; the other commands'
one-line errors: tests/mnas/commands/test_hostile_cli.py; latency tables refused at load:
tests/latency/test_table_refusals.py.)"""
from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mnas.cli import main
from mnas.search.history import load_history

ROOT = Path(__file__).resolve().parents[3]
TINY: dict[str, Any] = {**yaml.safe_load((Path(__file__).parent / "tiny_search.yaml").read_text()),
                        "reward": {"failed_reward": -0.5}, "budget": {"children": 4, "batch": 2}}


def _config(tmp_path: Path, **sections: Any) -> Path:
    data = {**TINY, **sections}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def search(*args: Any) -> int:
    return main(["search", *map(str, args), "--local", "--no-progress"])


def _one_line(capsys: pytest.CaptureFixture[str], *fragments: str,
              prefix: str = "mnas search: error: ") -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _cli(*args: Any, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mnas.cli", "search", *map(str, args),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


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
def _fake_result(arch: Any) -> dict[str, Any]:
    return {"status": "ok", "accuracy": 0.5 + 0.01 * sum(b.kernel for b in arch.blocks),
            "train_loss": 1.0, "epochs": 1.0, "images_per_s": 1.0, "wall_time_s": 0.0,
            "params": 10, "macs": 10, "error": None}


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


# -- 3. latencies checked before a child is trained ------------------------------------------------
_PREDICTOR = '''
import math
import numpy as np

class Pred:
    """Returns BAD for architectures whose first block has kernel 5 (a real one for the rest)."""
    def __init__(self, space):
        pass
    def _one(self, arch):
        if arch.blocks[0].kernel == 5:
            if BAD == "raise":
                raise RuntimeError("device unreachable")
            return BAD
        return 0.01 * sum(b.kernel for b in arch.blocks)
    def predict(self, arch):
        return self._one(arch)
    def predict_many(self, archs):
        return np.array([self._one(a) for a in archs], dtype=object)
'''


@pytest.mark.parametrize("bad, shown", [
    ("math.nan", "nan"), ("math.inf", "inf"), ("-1.0", "-1.0"), ("0.0", "0.0"),
    ("'12'", "'12'"), ("None", "None"), ("'raise'", "RuntimeError: device unreachable")],
    ids=["nan", "inf", "negative", "zero", "string", "None", "raises"])
def test_an_unusable_latency_fails_the_child_before_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str, shown: str) -> None:
    import mnas.training.trainer as trainer

    module = f"badlat_{abs(hash(bad)) % 10 ** 8}"
    (tmp_path / f"{module}.py").write_text(_PREDICTOR.replace("BAD ==", "BAD ==")
                                           + f"\nBAD = {bad}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    trained: list[int] = []

    def train(arch: Any, config: Any, *, num_classes: int | None = None) -> dict[str, Any]:
        trained.append(arch.blocks[0].kernel)
        return _fake_result(arch)

    monkeypatch.setattr(trainer, "train_child", train)
    space = {**TINY["search_space"], "kernels": [3, 5]}
    config = _config(tmp_path, search_space=space, controller={"name": "random"},
                     latency={"predictor": f"{module}:Pred", "target_ms": 0.05},
                     budget={"children": 8, "batch": 2})
    assert search(config, "--run-dir", tmp_path / "run") == 0
    records = load_history(tmp_path / "run" / "history.jsonl")
    bad_records = [r for r in records if "_k5_" in r.arch[0]]
    assert len(records) == 8 and bad_records and 5 not in trained
    for r in bad_records:
        assert r.status == "failed" and r.reward == -0.5 and r.latency_ms is None
        assert f"predictor '{module}:Pred'" in r.error and shown in r.error, r.error
    assert all(r.status == "ok" for r in records if r not in bad_records)


# -- 4. runaway rewards ----------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [{"alpha": -300, "beta": -300}, {"alpha": -1000, "beta": -1},
                                     {"alpha": 0.0, "beta": 0.5}])
def test_reward_exponents_outside_the_range_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], weights: dict[str, float]) -> None:
    config = _config(tmp_path, reward=weights)
    assert search(config, "--run-dir", tmp_path / "run") == 2
    _one_line(capsys, str(config), "must be in [-2, 0]")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_a_non_finite_update_is_skipped_and_never_written(algorithm: str) -> None:
    from controllers import create_controller
    from search_spaces.space import MnasNetSpace

    controller = create_controller("rnn", MnasNetSpace(), seed=0, algorithm=algorithm)
    samples = controller.sample(4)
    before = {k: v.clone() for k, v in controller.policy.state_dict().items()}
    stats = controller.update(samples, [1e300, 0.0, 1e300, 0.0])  # float32 advantages: inf
    assert stats["skipped"] == 1.0
    after = controller.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert controller.baseline is None and controller.version == 0
    stats = controller.update(controller.sample(4), [1.0, 0.0, 1.0, 0.0])  # learning goes on
    assert "skipped" not in stats and controller.version == 1
    assert all(bool(torch.isfinite(p).all()) for p in controller.policy.parameters())


def test_the_search_logs_and_tracks_a_skipped_update(tmp_path: Path) -> None:
    """A latency 1e-200 of the target at alpha -2 overflows the reward: the update with it is
    skipped, said in the log and in TensorBoard's scalars, and the checkpoint stays finite."""
    from controllers import create_controller
    from mnas.search.checkpoint import load_checkpoint
    from mnas.search.executor import LocalExecutor
    from mnas.search.loop import RewardSpec, Search
    from search_spaces.space import MnasNetSpace

    class Tracker:
        updates: list[dict[str, float]] = []

        def log_child(self, record: dict[str, Any], step: int) -> None: ...

        def log_update(self, stats: dict[str, float], actions: Any, update: int) -> None:
            self.updates.append(stats)

        def close(self, records: Any) -> None: ...

    space = MnasNetSpace.from_dict(TINY["search_space"])
    logged: list[str] = []
    tracker = Tracker()
    search = Search(tmp_path / "run", space=space, controller=create_controller("rnn", space),
                    latency=lambda arch: 1e-200, reward=RewardSpec(1.0, -2.0, -2.0, 0.0),
                    children=4, batch=2, tracker=tracker, log=logged.append)
    search.run(LocalExecutor(None, trainer=lambda arch, config, num_classes=None:
                             _fake_result(arch)), progress=False)
    search.close()
    assert len(logged) == 2 and all("skipped" in line for line in logged), logged
    assert [s.get("skipped") for s in tracker.updates] == [1.0, 1.0]
    policy = load_checkpoint(tmp_path / "run").controller["policy"]
    assert all(bool(torch.isfinite(t).all()) for t in policy.values())
    assert all(r.reward is None for r in load_history(tmp_path / "run" / "history.jsonl"))


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


# -- 7. one line instead of a traceback ------------------------------------------------------------
@pytest.mark.parametrize("changes, fragment", [
    ({"name": "n" * 300}, "name: expected"),
    ({"name": "a\x00b"}, "name: expected"),
    ({"name": "a\nb"}, "name: expected"),
    ({"controller": {"hidden_size": 100_000_000}}, "controller.hidden_size"),
    ({"seed": 10 ** 23}, "seed: expected an integer in [0, "),
    ({"search_space": {**TINY["search_space"], "layer_deltas": [-5]}},
     "search_space.layer_deltas: -5"),
], ids=["long name", "NUL in name", "newline in name", "hidden_size 1e8", "seed 1e23",
        "layer_deltas -5"])
def test_bad_values_are_one_line_and_leave_no_run_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any],
        fragment: str) -> None:
    config = _config(tmp_path, **changes)
    output = tmp_path / "runs"
    assert search(config, "--set", f"output.dir={output}") == 2
    _one_line(capsys, str(config), fragment)
    assert not output.exists() or not any(output.iterdir())


def test_a_nearly_full_file_system_leaves_no_empty_run_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import mnas.search.rundir as rundir

    monkeypatch.setattr(rundir.shutil, "disk_usage",
                        lambda _p: type("U", (), {"free": 2 * 1024 ** 2})())
    assert search(_config(tmp_path), "--run-dir", tmp_path / "full") == 2
    _one_line(capsys, "full: only 2.0 MiB free")
    assert not (tmp_path / "full").exists()


@pytest.fixture()
def finished(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    config, run_dir = _config(tmp_path), tmp_path / "run"
    assert search(config, "--run-dir", run_dir) == 0
    capsys.readouterr()
    return config, run_dir


@pytest.mark.parametrize("content, fragment", [
    ({"version": 1}, "corrupt controller checkpoint ('controller' missing"),
    ({"version": 1, "controller": {}, "next_index": "9", "updates": 0, "in_flight": [],
      "pending": []}, "'next_index' missing or not int"),
], ids=["version only", "next_index text"])
def test_a_hand_made_controller_checkpoint_is_one_line(
        finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str], content: dict[str, Any],
        fragment: str) -> None:
    config, run_dir = finished
    torch.save(content, run_dir / "controller.pt")
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=6") == 2
    _one_line(capsys, "controller.pt", fragment)


def test_checkpoint_errors_do_not_repeat_torchs_weights_only_advice(
        finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import datetime

    config, run_dir = finished
    torch.save({"version": 1, "when": datetime.datetime(2026, 1, 1)}, run_dir / "controller.pt")
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=6") == 2
    line = _one_line(capsys, "controller.pt: cannot read the controller checkpoint")
    assert "weights_only" not in line and "trust" not in line


def test_an_edited_table_calibration_is_one_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from latency.table import LatencyTable, save_table
    from search_spaces.space import MnasNetSpace

    space = MnasNetSpace.from_dict(TINY["search_space"])
    table = tmp_path / "table.json"
    save_table(LatencyTable(space=space.to_dict(), fingerprint=space.fingerprint, provenance={},
                            entries={}, complete=True,
                            calibration={"selected": "linear", "fits": {"linear": {
                                "features": ["lut"], "coef": "fast", "intercept": 0.0}}}),
               table)
    config = _config(tmp_path, latency={"predictor": "lut", "table": str(table),
                                        "target_ms": 0.05})
    assert search(config, "--run-dir", tmp_path / "run") == 2
    _one_line(capsys, str(table), "calibration.fits.linear.coef")


def test_a_history_value_of_the_wrong_type_is_refused_by_resume(
        finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = finished
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "accuracy": "abc"})
    path.write_text("\n".join(lines) + "\n")
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=6") == 2
    _one_line(capsys, "history.jsonl: line 2: accuracy is 'abc'")


@pytest.mark.parametrize("tail, torn",
                         [(b'{"index": 4, "ar', True), (b'{"index": 4, "ar\n', False)],
                         ids=["no newline", "newline"])
def test_resume_and_export_agree_on_a_damaged_last_line(
        finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tail: bytes,
        torn: bool) -> None:
    """Without its newline the last line is a write a kill tore (both skip it; resume cuts it);
    with one it is corruption (both refuse it, naming the line)."""
    config, run_dir = finished
    path = run_dir / "history.jsonl"
    path.write_bytes(path.read_bytes() + tail)
    export = main(["export", str(run_dir)])
    capsys.readouterr()
    resume = search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=5")
    err = capsys.readouterr().err
    assert (export, resume) == ((0, 0) if torn else (2, 2)), err
    if not torn:
        assert "line 5 is not a JSON object" in err


_FULL_DISK_TB = """
import errno, os, sys
from tensorboard.summary.writer import record_writer
original, calls = record_writer.RecordWriter.write, []
def write(self, data):
    calls.append(1)
    if len(calls) > 6:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    original(self, data)
record_writer.RecordWriter.write = write
from mnas.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_no_tensorboard_thread_traceback_under_the_disk_full_message(tmp_path: Path) -> None:
    """TensorBoard's writer thread hits the full disk first (its writes fail from the seventh
    on); run as a real process, since pytest catches thread exceptions itself."""
    config = _config(tmp_path, output={"tensorboard": True, "plot": False},
                     budget={"children": 30, "batch": 2})
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK_TB, "search", str(config),
                           "--run-dir", str(tmp_path / "run"), "--local", "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    err = proc.stderr
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "Exception in thread" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and os.strerror(errno.ENOSPC) in errors[0] and "--resume" in errors[0]


def test_a_reward_that_overflows_is_not_a_traceback() -> None:
    from mnas.reward import mnas_reward

    assert math.isinf(mnas_reward(0.5, 1e-200, target_ms=1.0, alpha=-2.0, beta=-2.0))
