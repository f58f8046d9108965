"""Issue 7, in process and fast: every bad input to `mnas search` is exit code 2 with one line
naming the file and the key or token (no traceback, nothing left behind), and the faults a search
must survive without a subprocess: failing children, a full disk, a half-written checkpoint.

(The SIGKILL / SIGTERM / SIGINT tests run real processes: tests/mnas/search/test_search.py, slow.
Ray worker deaths, timeouts and a lost node: tests/mnas/search/test_distributed.py.)"""
from __future__ import annotations

import copy
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from mnas.cli import main
from mnas.search.history import HistoryWriter, load_history

#: The shared tiny search (tiny_search.yaml), with a failed-child reward and a 4-child budget.
TINY: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "tiny_search.yaml").read_text())
TINY["reward"] = {"failed_reward": -0.5}
TINY["child_training"]["bn_recalibration"] = 1
TINY["budget"] = {"children": 4, "batch": 2}


def _write(tmp_path: Path, data: Any = None, *, text: str | None = None,
           name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text if text is not None else yaml.safe_dump(data))
    return path


def _with(changes: dict[str, Any]) -> dict[str, Any]:
    """TINY with `{"a.b.c": value}` changes (value `...` deletes the key)."""
    data = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def search(*args: Any) -> int:
    return main(["search", *map(str, args), "--local", "--no-progress"])


def _one_line_error(capsys: pytest.CaptureFixture[str], *fragments: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mnas search: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _foreign_table(path: Path) -> str:
    from latency.table import LatencyTable, save_table
    from search_spaces.space import MnasNetSpace

    other = MnasNetSpace.from_dict({"input_size": 32})
    save_table(LatencyTable(space=other.to_dict(), fingerprint=other.fingerprint, provenance={},
                            entries={}, complete=True), path)
    return str(path)


# (test id, file data or raw text, --set overrides, fragments the one error line must hold)
BAD_CONFIGS = [
    ("empty file", "", [], ["empty file"]),
    ("comments only", "# nothing\n", [], ["empty file"]),
    ("invalid yaml", "budget: {children: 3\n", [], ["invalid YAML", "line 2"]),
    ("tabs yaml", "name: x\n\tseed: 1\n", [], ["invalid YAML"]),
    ("top-level list", "- a\n- b\n", [], ["expected a mapping of sections"]),
    ("python tag", "name: !!python/object/apply:os.system [ls]\n", [], ["invalid YAML"]),
    ("unknown key", {"bogus": 1}, [], ["bogus: unknown key"]),
    ("unknown nested key", {"budget.kids": 3}, [], ["budget.kids: unknown key"]),
    ("misspelt section", {"child_trainnig": {}}, [], ["child_trainnig: unknown key"]),
    ("wrong type int", {"budget.children": "many"}, [],
     ["budget.children: expected an integer, got 'many'"]),
    ("wrong type section", {"latency": 5}, [], ["latency: expected a mapping"]),
    ("wrong type float", {"child_training.epochs": "long"}, [], ["child_training.epochs"]),
    ("negative budget", {"budget.children": -3}, [], ["budget.children: expected an integer > 0"]),
    ("zero batch", {"budget.batch": 0}, [], ["budget.batch: expected an integer > 0"]),
    ("zero target", {"latency.target_ms": 0}, [], ["latency.target_ms: expected a number > 0"]),
    ("negative target", {"latency.target_ms": -5}, [], ["latency.target_ms"]),
    ("missing required key", {"child_training.data": {"name": "npz"}}, [],
     ["child_training.data.path: required"]),
    ("bad search space", {"search_space.kernels": [4]}, [], ["search_space.kernels"]),
    ("data path missing", {"child_training.data": {"name": "npz", "path": "/nope/d.npz"}}, [],
     ["child_training.data.path: /nope/d.npz does not exist"]),
    ("predictor does not import", {"latency.predictor": "no_such_pkg.mod:Pred"}, [],
     ["latency.predictor: cannot import 'no_such_pkg.mod'"]),
    ("predictor attribute missing", {"latency.predictor": "json:NoSuchPredictor"}, [],
     ["latency.predictor: 'json' has no attribute"]),
    ("predictor kwargs", {"latency.kwargs": {"bogus": 1}}, [], ["latency.kwargs", "bogus"]),
    ("lut without table", {"latency.predictor": "lut", "latency.kwargs": {}}, [],
     ["latency.table: latency predictor 'lut' needs a table"]),
    ("table missing", {"latency.predictor": "lut", "latency.kwargs": {},
                       "latency.table": "/nope/t.json"}, [],
     ["latency.table: /nope/t.json: no such latency table"]),
    ("set unknown key", {}, ["budget.kids=3"], ["--set budget.kids: unknown key 'kids'"]),
    ("set negative budget", {}, ["budget.children=-1"], ["budget.children"]),
    ("set not key=value", {}, ["budget.children"], ["expected KEY.PATH=VALUE"]),
]


@pytest.mark.parametrize("data, overrides, fragments", [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_exit_2_one_line_naming_file_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], data: Any, overrides: list[str],
        fragments: list[str]) -> None:
    path = _write(tmp_path, text=data) if isinstance(data, str) else _write(tmp_path, _with(data))
    run_dir = tmp_path / "run"
    sets = [a for o in overrides for a in ("--set", o)]
    assert search(path, "--run-dir", run_dir, *sets) == 2
    line = _one_line_error(capsys, *fragments)
    if not line.startswith("mnas search: error: --set"):
        assert str(path) in line
    assert not run_dir.exists()  # refused before anything was written


@pytest.mark.parametrize("table", ["foreign", "corrupt"])
def test_bad_latency_table_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              table: str) -> None:
    path = tmp_path / "table.json"
    if table == "foreign":
        _foreign_table(path)
    else:
        path.write_text("{half a table")
    config = _write(tmp_path, _with({"latency.predictor": "lut", "latency.kwargs": {},
                                     "latency.table": str(path)}))
    assert search(config, "--run-dir", tmp_path / "run") == 2
    fragment = "built for another search space" if table == "foreign" else "corrupt latency table"
    _one_line_error(capsys, str(config), "latency.table", str(path), fragment)


def test_custom_predictor_that_fails_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """User code named by `latency.predictor` that raises on import or construction."""
    (tmp_path / "broken_at_import.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "broken_ctor.py").write_text(
        "class Pred:\n    def __init__(self, space):\n        raise RuntimeError('ctor boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, fragment in (("broken_at_import:Pred", "boom at import"),
                           ("broken_ctor:Pred", "'broken_ctor:Pred' raised RuntimeError: ctor")):
        config = _write(tmp_path, _with({"latency.predictor": name, "latency.kwargs": {}}))
        assert search(config, "--run-dir", tmp_path / "run") == 2
        _one_line_error(capsys, str(config), "latency.predictor", fragment)


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert search(tmp_path / "nope.yaml") == 2
    _one_line_error(capsys, "nope.yaml: no such experiment config")


# -- run directories -----------------------------------------------------------------------------
@pytest.fixture()
def finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """A small finished search: (config file, run dir)."""
    config = _write(tmp_path, TINY)
    run_dir = tmp_path / "run"
    assert search(config, "--run-dir", run_dir) == 0
    capsys.readouterr()
    assert len(load_history(run_dir / "history.jsonl")) == 4
    from mnas.config.schema import load_config  # the resolved config is saved in the run dir
    assert load_config(run_dir / "config.yaml") == load_config(config)
    return config, run_dir


def test_local_search_says_the_ray_timeout_does_not_apply(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path, _with({"budget.children": 2, "ray.child_timeout_s": 30}))
    assert search(config, "--run-dir", tmp_path / "run") == 0
    assert "ray.child_timeout_s (30 s) does not apply" in capsys.readouterr().err


def test_resume_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert search("--run-dir", tmp_path / "gone", "--resume") == 2
    _one_line_error(capsys, "gone: no such run directory to resume")
    assert search(_write(tmp_path, TINY), "--run-dir", tmp_path / "gone", "--resume") == 2
    _one_line_error(capsys, "gone: no such run directory to resume")


def test_run_dir_that_cannot_be_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("")
    assert search(_write(tmp_path, TINY), "--run-dir", tmp_path / "afile" / "run") == 2
    _one_line_error(capsys, "afile/run: cannot create the run directory")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_run_dir_chmod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "ro"
    run_dir.mkdir()
    run_dir.chmod(0o500)
    try:
        assert search(_write(tmp_path, TINY), "--run-dir", run_dir) == 2
    finally:
        run_dir.chmod(0o700)
    _one_line_error(capsys, "ro: run directory is not writable")


def test_unwritable_or_full_run_dir_refused_before_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Read-only / permission-less (faked, so it also holds when tests run as root) and a nearly
    full file system: refused with one line before any child is trained."""
    import mnas.search.rundir as runner

    config = _write(tmp_path, TINY)
    with monkeypatch.context() as m:
        m.setattr(runner.os, "access", lambda *_a, **_k: False)
        assert search(config, "--run-dir", tmp_path / "ro") == 2
        _one_line_error(capsys, "ro: run directory is not writable")
    with monkeypatch.context() as m:
        m.setattr(runner.shutil, "disk_usage", lambda _p: type("U", (), {"free": 1024 ** 2})())
        assert search(config, "--run-dir", tmp_path / "full") == 2
        _one_line_error(capsys, "full: only 1.0 MiB free")
    assert not (tmp_path / "full" / "history.jsonl").exists()


def test_fresh_search_refuses_a_run_dir_with_a_history(
        finished_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = finished_run
    before = (run_dir / "history.jsonl").read_bytes()
    assert search(config, "--run-dir", run_dir) == 2
    _one_line_error(capsys, str(run_dir), "already holds a search", "--resume")
    assert (run_dir / "history.jsonl").read_bytes() == before


def test_resume_with_another_config_refused_unless_forced(
        finished_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = finished_run
    before = (run_dir / "history.jsonl").read_bytes()
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "seed=5") == 2
    _one_line_error(capsys, str(run_dir), "config differs", "seed: 1 -> 5", "--force")
    assert (run_dir / "history.jsonl").read_bytes() == before
    # budget, ray and output may change on resume; the rest only with --force
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=5") == 0
    assert search(config, "--run-dir", run_dir, "--resume", "--force", "--set", "seed=5",
                  "--set", "budget.children=6") == 0
    records = load_history(run_dir / "history.jsonl")
    assert [r.index for r in records] == list(range(6))
    assert (run_dir / "history.jsonl").read_bytes().startswith(before)


@pytest.mark.parametrize("damage, fragment", [
    (lambda lines: lines[:1] + ["garbage"] + lines[2:], "history.jsonl: line 2 is not a JSON"),
    (lambda lines: lines[:2] + ["[1, 2]"] + lines[3:], "history.jsonl: line 3 is not a JSON"),
    (lambda lines: lines[:2] + [json.dumps({"index": 2})] + lines[3:],
     "history.jsonl: line 3: record has no 'arch'"),
    (lambda lines: [json.dumps({**json.loads(lines[0]), "index": "zero"})] + lines[1:],
     "history.jsonl: line 1: index is 'zero'"),
])
def test_corrupt_history_line_is_reported_with_its_number(
        finished_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str], damage: Any,
        fragment: str) -> None:
    config, run_dir = finished_run
    path = run_dir / "history.jsonl"
    path.write_text("\n".join(damage(path.read_text().splitlines())) + "\n")
    before = path.read_bytes()
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=6") == 2
    _one_line_error(capsys, fragment, "corrupt history")
    assert path.read_bytes() == before  # never "repaired" away


def test_corrupt_checkpoint_is_reported(finished_run: tuple[Path, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = finished_run
    (run_dir / "controller.pt").write_bytes(b"PK\x03\x04 not a zip")
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=6") == 2
    _one_line_error(capsys, "controller.pt: cannot read the controller checkpoint")


def test_half_written_checkpoint_temp_file_is_ignored(finished_run: tuple[Path, Path]) -> None:
    """A SIGKILL during `save_checkpoint` leaves a temp file behind, never a torn controller.pt:
    the resume reads the last complete checkpoint."""
    config, run_dir = finished_run
    (run_dir / ".controller-dead.pt.tmp").write_bytes(b"PK\x03\x04 torn")
    assert search(config, "--run-dir", run_dir, "--resume", "--set", "budget.children=6") == 0
    assert [r.index for r in load_history(run_dir / "history.jsonl")] == list(range(6))


# -- faults during a search ----------------------------------------------------------------------
def _raise_every_other(monkeypatch: pytest.MonkeyPatch) -> None:
    import mnas.training.trainer as training

    original, calls = training.Trainer.train, []

    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("simulated crash inside training")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "train", train)


@pytest.mark.parametrize("fault, changes, status", [
    ("raises", {}, "failed"),
    ("nan", {"child_training.lr": 1e30, "child_training.momentum": 0.0,
             "child_training.warmup_epochs": 0.0}, "diverged"),
    ("time limit", {"child_training.steps": 100000, "child_training.time_limit_s": 0.001},
     "timeout"),
])
def test_failing_children_get_the_configured_reward_and_the_search_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, changes: dict[str, Any],
        status: str) -> None:
    if fault == "raises":
        _raise_every_other(monkeypatch)
    config = _write(tmp_path, _with({**changes, "budget.children": 6}))
    assert search(config, "--run-dir", tmp_path / "run") == 0
    records = load_history(tmp_path / "run" / "history.jsonl")
    assert len(records) == 6 and [r.index for r in records] == list(range(6))
    bad = [r for r in records if r.status == status]
    assert bad and all(r.reward == -0.5 for r in bad)
    assert all(r.status in ("ok", status) for r in records)
    if fault == "raises":
        assert any(r.status == "ok" for r in records)  # the others still trained
        assert all("simulated crash" in r.error for r in bad)


@pytest.mark.parametrize("target, code", [
    ("history", errno.ENOSPC), ("checkpoint", errno.ENOSPC), ("history", errno.EROFS)])
def test_disk_full_mid_search_is_one_line_and_resumable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        target: str, code: int) -> None:
    """The file system fills up (or turns read-only) while children train: one error line with
    the resume command, exit 1, every recorded child kept; the resume ends with the budget."""
    import mnas.search.loop as search_mod

    config = _write(tmp_path, _with({"budget.children": 6}))
    run_dir = tmp_path / "run"
    owner, name = (HistoryWriter, "append") if target == "history" \
        else (search_mod, "save_checkpoint")
    original, calls = getattr(owner, name), []

    def failing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) > 4:
            raise OSError(code, os.strerror(code))
        return original(*args)

    with monkeypatch.context() as m:
        m.setattr(owner, name, failing)
        assert search(config, "--run-dir", run_dir) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("mnas search: error:")]
    before = load_history(run_dir / "history.jsonl")
    assert 0 < len(before) < 6
    assert len(line) == 1 and os.strerror(code) in line[0] and "--resume" in line[0]
    assert f"{len(before)} children recorded are safe" in line[0]
    assert search(config, "--run-dir", run_dir, "--resume") == 0
    after = load_history(run_dir / "history.jsonl")
    assert after[:len(before)] == before and [r.index for r in after] == list(range(6))


def test_is_disk_error_only_blames_the_run_dir_for_its_own_files(tmp_path: Path) -> None:
    from mnas.search.rundir import is_disk_error

    run = tmp_path / "run"
    assert is_disk_error(OSError(errno.ENOSPC, "full"), run)
    assert is_disk_error(PermissionError(errno.EACCES, "denied", str(run / "history.jsonl")), run)
    assert is_disk_error(PermissionError(errno.EACCES, "denied"), run)
    assert not is_disk_error(PermissionError(errno.EACCES, "denied", "/data/x.npz"), run)
    assert not is_disk_error(OSError(errno.ECONNREFUSED, "refused"), run)
    assert not is_disk_error(ValueError("x"), run)
