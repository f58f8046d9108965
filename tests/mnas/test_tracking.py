"""TensorBoard events and the Pareto plot written by mnas.tracking."""
from __future__ import annotations

import numpy as np
import pytest

from mnas.search.history import HistoryRecord
from mnas.search.ranking import Candidate
from mnas.tracking import Tracker, plot_pareto
from search_spaces.space import MnasNetSpace


def _records(n=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        lat, acc = float(rng.uniform(1, 10)), float(rng.uniform(0.3, 0.9))
        out.append(HistoryRecord(index=i, arch=(f"a{i}",), accuracy=acc, latency_ms=lat,
                                 reward=acc * (lat / 5) ** -0.07, status="ok"))
    out.append(HistoryRecord(index=n, arch=("x",), latency_ms=3.0, reward=0.0, status="failed"))
    return out


def test_plot_pareto_writes_a_png(tmp_path):
    path = plot_pareto(_records(), tmp_path / "pareto.png", target_ms=5.0,
                       references=[("mnasnet_a1", 4.0), ("far_away", 1e6)])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    failed_only = [r for r in _records() if r.status != "ok"]
    assert plot_pareto(failed_only, tmp_path / "none.png", target_ms=5.0) is None


def test_tracker_writes_scalars_histograms_and_hparams(tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    space = MnasNetSpace()
    tracker = Tracker(tmp_path, decisions=space.decisions, target_ms=5.0,
                      hparams={"controller": {"name": "rnn", "lr": 0.1}, "seed": 0})
    records = _records()
    for step, record in enumerate(records, start=1):
        tracker.log_child(record, step)
    rng = np.random.default_rng(0)
    actions = [space.sample_actions(rng) for _ in range(4)]
    tracker.log_update({"loss": 0.5, "entropy": 1.2}, actions, 1)
    tracker.close(records)
    assert (tmp_path / "pareto.png").exists()
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"),
                                             size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"child/reward", "child/accuracy", "child/latency_ms", "search/best_reward",
            "controller/loss", "controller/entropy"} <= set(tags["scalars"])
    assert "choices/block1.op" in tags["histograms"]
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    written = {v.tag for f in (tmp_path / "tb").glob("events.out.tfevents.*")
               for e in EventFileLoader(str(f)).Load() for v in e.summary.value}
    assert {"_hparams_/session_start_info", "hparam/best_reward"} <= written  # the HParams tab
    best = [e.value for e in acc.Scalars("search/best_reward")]
    assert best == sorted(best) and best[-1] == pytest.approx(max(r.reward for r in records))
    assert len(acc.Scalars("child/accuracy")) == len(records) - 1  # failed child: no accuracy


def test_progress_shows_done_total_running_best_and_eta(capsys):
    from mnas.progress import Progress

    bar = Progress(10, 2, enabled=True)
    bar.update(3, 2, Candidate(index=0, arch=("a",), reward=0.61234, accuracy=0.7,
                               latency_ms=1.25, line=1))
    bar.update(5, 2, Candidate(index=1, arch=("b",), reward=0.7, accuracy=0.75, latency_ms=1.0,
                               line=2))
    bar.close()
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "5/10" in last and "running=2" in last and "best=0.7000" in last
    assert "<" in last  # tqdm's elapsed<remaining (ETA)
    quiet = Progress(10, 0, enabled=False)
    quiet.update(1, 1, None)
    quiet.close()
    assert capsys.readouterr().err == ""
