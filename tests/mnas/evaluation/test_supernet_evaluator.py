"""`evaluator: supernet`: children scored with a tiny supernet trained here (seconds), in a
`--local` search with resume, on a Ray pool that builds the supernet once per worker, and bad
checkpoints refused in one line with exit 2 before anything is written."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mnas.cli import main
from mnas.config.schema import load_config
from mnas.evaluation import EvalResult, Evaluator, is_remote
from mnas.evaluation.supernet import SupernetChild
from mnas.search.history import load_history
from mnas.search.runner import create_evaluator

from .conftest import SN_DATA, SN_SPACE, write_config

def test_contract_and_scores_equal_the_scorer_on_the_checkpoint(trained):
    from mnas.supernet.evaluation import load_scorer

    config = load_config(trained[0])
    evaluator = create_evaluator(config)
    assert isinstance(evaluator, Evaluator) and is_remote(evaluator)
    scorer = load_scorer(trained[1], config.space, config.child_training, config.supernet)
    rng = np.random.default_rng(0)
    for _ in range(6):
        arch = config.space.sample(rng)
        result = evaluator.evaluate(arch)
        assert isinstance(result, EvalResult) and result.status == "ok" and result.error is None
        assert 0.0 <= result.accuracy <= 1.0
        assert evaluator.evaluate(arch).accuracy == result.accuracy  # deterministic
        assert result.accuracy == scorer.score(arch).accuracy
        assert result.extra["params"] == scorer.supernet.active_params(arch)


def test_the_pool_trainer_pickles_without_its_built_scorer(trained):
    import pickle

    config = load_config(trained[0])
    child = create_evaluator(config).trainer
    child.warmup(config.child_training)
    assert child._scorer is not None
    copy = pickle.loads(pickle.dumps(child))
    assert copy._scorer is None and copy.weights.keys() == child.weights.keys()
    arch = config.space.sample(np.random.default_rng(1))
    mine, theirs = child(arch, config.child_training), copy(arch, config.child_training)
    assert mine.pop("wall_time_s") > 0 and theirs.pop("wall_time_s") > 0
    assert mine == theirs


def test_local_search_records_scores_and_resumes(trained, tmp_path):
    config = trained[0]
    run = tmp_path / "run"
    assert main(["search", str(config), "--run-dir", str(run), "--local", "--no-progress"]) == 0
    records = load_history(run / "history.jsonl")
    assert len(records) == 12 and all(r.status == "ok" for r in records)
    assert all(0.0 <= r.accuracy <= 1.0 for r in records)
    assert all(r.worker in ("local", None) for r in records)
    assert main(["search", str(config), "--run-dir", str(run), "--resume", "--local",
                 "--no-progress", "--set", "budget.children=16"]) == 0
    again = load_history(run / "history.jsonl")
    assert sorted(r.index for r in again) == list(range(16))
    assert again[:12] == records


class CountingChild(SupernetChild):
    """Leaves a file per supernet built, named by the process that built it."""

    def __init__(self, child: SupernetChild, marks: str) -> None:
        super().__init__(child.meta, child.weights, child.sn, child.source)
        self.marks = marks

    def scorer(self, train_config):
        if self._scorer is None:
            Path(self.marks, f"built-{os.getpid()}-{len(os.listdir(self.marks))}").touch()
        return super().scorer(train_config)


@pytest.mark.ray
def test_ray_workers_build_the_supernet_once_and_score_child_after_child(trained, tmp_path):
    from mnas.search.ray_pool import shutdown_ray
    from mnas.search.runner import create_executor, create_search

    config = load_config(trained[0])
    evaluator = create_evaluator(config)
    marks = tmp_path / "marks"
    marks.mkdir()
    evaluator.trainer = CountingChild(evaluator.trainer, str(marks))
    shutdown_ray()
    executor = create_executor(config, evaluator=evaluator)
    try:
        search = create_search(config, tmp_path / "run", resume=False)
        search.run(executor, progress=False)
        search.close()
    finally:
        executor.shutdown()
        shutdown_ray()
    records = load_history(tmp_path / "run" / "history.jsonl")
    scored = [r for r in records if not r.cached]
    assert len(records) == 12 and all(r.status == "ok" for r in records)
    assert len({r.worker for r in scored}) == 2
    builds = sorted(p.name for p in marks.iterdir())
    assert len(builds) == 2 and len({b.split("-")[1] for b in builds}) == 2, builds
    local = create_evaluator(config)  # a worker's score is the driver's, to the image
    val = len(local.trainer.scorer(config.child_training).data.val_y)
    for r in scored[:4]:
        arch = config.space.from_strings(list(r.arch))
        assert r.accuracy == pytest.approx(local.evaluate(arch).accuracy, abs=1.0 / val)


@pytest.mark.parametrize("case, fragment", [
    ("missing", "no supernet checkpoint here"),
    ("space", "supernet checkpoint is for another search space"),
    ("classes", "supernet was trained for 4 classes and 3 channels, the data has 6 and 3"),
    ("channels", "the data has 10 and 1"),
    ("path", "evaluator.path: not used by evaluator 'supernet'"),
    ("kwargs", "evaluator.kwargs.recalibration_batches"),
])
def test_bad_checkpoints_exit_2_in_one_line_before_the_run(trained, tmp_path, capsys, case,
                                                           fragment):
    checkpoint = tmp_path / "nope.pt" if case == "missing" else trained[1]
    space = dict(SN_SPACE, head_filters=24) if case == "space" else None
    data = {"classes": dict(SN_DATA, num_classes=6),
            "channels": {"name": "digits", "input_size": 8}}.get(case)
    extra = {"path": {"evaluator": {"name": "supernet", "path": str(trained[1])}},
             "kwargs": {"evaluator": {"name": "supernet",
                                      "kwargs": {"recalibration_batches": 2}}}}.get(case, {})
    config = write_config(tmp_path / "bad.yaml", checkpoint, tmp_path / "runs", space=space,
                          data=data, **extra)
    run = tmp_path / "run"
    assert main(["search", str(config), "--run-dir", str(run), "--local", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(config) in err and fragment in err, err
    if case not in ("path", "kwargs"):
        assert f"supernet.checkpoint: {checkpoint}" in err, err
    assert not run.exists()


def test_a_missing_checkpoint_is_reported_before_a_latency_table_is_built(trained, tmp_path,
                                                                           capsys):
    latency = {"predictor": "lut", "table": str(tmp_path / "lut.json"),
               "kwargs": {"build_if_missing": True}, "target_ms": 0.05}
    config = write_config(tmp_path / "bad.yaml", tmp_path / "nope.pt", tmp_path / "runs",
                          latency=latency)
    assert main(["search", str(config), "--run-dir", str(tmp_path / "run"), "--local",
                 "--no-progress"]) == 2
    assert "no supernet checkpoint here" in capsys.readouterr().err
    assert not (tmp_path / "lut.json").exists()


def test_a_resume_refuses_a_supernet_retrained_since_the_run_started(trained, tmp_path, capsys):
    checkpoint = tmp_path / "sn.pt"
    checkpoint.write_bytes(trained[1].read_bytes())
    config = write_config(tmp_path / "sn.yaml", checkpoint, tmp_path / "runs")
    run = tmp_path / "run"
    search = ["search", str(config), "--run-dir", str(run), "--local", "--no-progress"]
    assert main(search) == 0
    assert main(["supernet", "train", str(config), "--quiet", "--set", "supernet.epochs=3"]) == 0
    capsys.readouterr()
    resume = search + ["--resume", "--set", "budget.children=16"]
    assert main(resume) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "evaluator.json" in err and "epochs 2" in err, err
    assert len(load_history(run / "history.jsonl")) == 12
    assert main(resume + ["--force"]) == 0
    assert len(load_history(run / "history.jsonl")) == 16
