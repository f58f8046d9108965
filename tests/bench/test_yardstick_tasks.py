"""The yardstick bench's OFA task: its vectorised scores (features from the actions, latency as a
sum of per-slot table entries) agree with the library's per-architecture evaluator and `ofa_yaml`
latency predictor, and it reproduces OFA's tutorial network. Needs the shared data."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MNAS_SHARED", ROOT.parent / "shared"))
OFA = SHARED / "data" / "nas-benchmarks" / "ofa-note10"

pytestmark = pytest.mark.skipif(not OFA.exists(), reason=f"shared data absent ({OFA})")


@pytest.fixture(scope="module")
def ofa():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from yardstick_tasks import OfaTask
        yield OfaTask(OFA)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_vectorised_scores_agree_with_the_library(ofa):
    assert ofa.check(400, seed=7) < 1e-9


def test_the_extreme_networks_score_as_the_data_readme_says(ofa):
    space = ofa.space
    largest = [d.size - 1 for d in space.decisions]
    smallest = [0] * len(space.decisions)
    accuracy, latency = ofa.evaluate(np.asarray([largest, smallest]))
    assert accuracy.round(2).tolist() == [83.59, 75.31]
    assert latency.round(1).tolist() == [92.4, 9.9]


def test_the_task_scores_the_tutorial_network_as_published(ofa):
    task = ofa.task(25.0, "hard")
    tutorial = task.info["tutorial"]
    assert round(tutorial["accuracy"], 2) == 81.71 and round(tutorial["latency_ms"], 2) == 24.73
    assert task.info["known_reward"] == pytest.approx(tutorial["accuracy"])
    assert task.optimum is None  # not enumerable: regret is against the best known


def test_a_missing_folder_is_one_line_and_exit_2(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import yardstick
        code = yardstick.main(["--space", "ofa", "--ofa-dir", str(tmp_path), "--controllers",
                               "--out", str(tmp_path / "out.json")])
    finally:
        sys.path.remove(str(ROOT / "bench"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "acc_predictor.npz" in err
    assert not (tmp_path / "out.json").exists()
