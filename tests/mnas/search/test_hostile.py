"""Issue 20, inputs: faults found by using `mnas search` as a hostile user would. Each test failed
on the code before the fix: unusable latencies, runaway rewards, and inputs that ended in a
traceback instead of one line. (Processes and resources: test_hostile_processes.py.)

(YAML alias bombs and deep nesting: tests/mnas/config/test_safe_yaml.py; the other commands'
one-line errors: tests/mnas/commands/test_hostile_cli.py; latency tables refused at load:
tests/latency/test_table_refusals.py.)"""
from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from mnas.cli import main
from mnas.search.history import load_history

from .conftest import ROOT, TINY, _config, _fake_result, _one_line, search


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
