"""The headline report's pure helpers: MobileNetV2 interpolation (no extrapolation), deltas,
medians over seeds, the carve of the extra set and the seed-major search order."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import headline_models
        import headline_report
        yield headline_report, headline_models
    finally:
        sys.path.remove(str(ROOT / "bench"))


def _row(name, ms, acc, extra=None, kind="baseline", **kw):
    return {"name": name, "kind": kind, "measured_ms": ms, "accuracy": acc,
            "extra_accuracy": extra, **kw}


def _sweep():
    return [_row("mobilenet_v2@0.35", 0.2, 0.60, 0.58), _row("mobilenet_v2@0.5", 0.3, 0.70, 0.66),
            _row("mobilenet_v2@1.0", 0.5, 0.80, 0.78), _row("mnasnet_a1@0.5", 0.25, 0.99, 0.99)]


def test_mobilenet_interpolates_within_the_sweep_only(bench):
    report, _ = bench
    rows = _sweep()
    assert report.mobilenet_at(rows, 0.4) == pytest.approx(0.75)
    assert report.mobilenet_at(rows, 0.4, "extra_accuracy") == pytest.approx(0.72)
    assert report.mobilenet_at(rows, 0.3) == pytest.approx(0.70)
    assert report.mobilenet_at(rows, 0.1) is None      # faster than the whole sweep
    assert report.mobilenet_at(rows, 0.6) is None      # slower
    assert report.mobilenet_at(rows, None) is None
    assert report.mobilenet_at(rows[:1], 0.2) is None  # one width is no curve


def test_deltas_and_method_medians(bench):
    report, _ = bench
    searched = [_row(f"rnn-s{s}", ms, acc, extra, kind="searched", method="rnn", preset="soft")
                for s, (ms, acc, extra) in enumerate([(0.4, 0.80, 0.70), (0.3, 0.72, 0.70),
                                                      (0.9, 0.90, 0.90)])]
    hard = _row("rnn-hard-s0", 0.2, 0.65, None, kind="searched", method="rnn", preset="hard")
    rows = _sweep() + searched + [hard]
    report.add_deltas(rows)
    assert searched[0]["delta_accuracy"] == pytest.approx(0.05)
    assert searched[0]["delta_extra_accuracy"] == pytest.approx(-0.02)
    assert searched[2]["outside_sweep"] and searched[2]["delta_accuracy"] is None
    assert hard["delta_extra_accuracy"] is None        # no extra figure, no delta
    curve = {"rnn": {"final_per_seed": [0.5, 0.7, 0.6]}}
    m = report.methods_summary(rows, curve, target=0.35)["rnn"]
    assert m["seeds"] == 3                             # the hard search is listed apart
    assert m["delta_accuracy_median"] == pytest.approx(0.035)  # median of 0.05, 0.02
    assert m["accuracy_median"] == pytest.approx(0.80)
    assert m["best_reward_median"] == pytest.approx(0.6)
    assert m["within_target"] == 1 and m["outside_sweep"] == 1


def test_best_so_far_and_curves(bench):
    report, models = bench
    assert report.best_so_far([0.2, None, 0.1, 0.5]) == [0.2, 0.2, 0.2, 0.5]
    runs = list(models.searches(["rnn", "constrained_random"], seeds=2, hard_seeds=1))
    assert runs == [("rnn", 0, "soft"), ("rnn", 0, "hard"), ("constrained_random", 0, "soft"),
                    ("constrained_random", 0, "hard"), ("rnn", 1, "soft"),
                    ("constrained_random", 1, "soft")]
    rewards = {models.search_name(*r): [0.1, 0.3, 0.2] for r in runs}
    rewards["rnn-s1"] = [0.4, 0.1]
    c = report.curves(runs, rewards)
    assert c["rnn"]["children"] == [1, 2]              # to the shortest search
    assert c["rnn"]["final_per_seed"] == [0.3, 0.4]
    duel = report.head_to_head({k: {"best_reward_median": v, "accuracy_median": 0.5,
                                    "extra_accuracy_median": None}
                                for k, v in (("rnn", 0.7), ("constrained_random", 0.6))})
    assert duel["best_reward_median"] == pytest.approx(0.1)
    assert duel["extra_accuracy_median"] is None


def test_carved_extra_is_disjoint_stratified_and_seeded(bench):
    _, models = bench
    labels = np.repeat(np.arange(10), 100)
    keep, extra = models.carve_split(labels, 0.5)
    assert len(set(keep) & set(extra)) == 0 and len(keep) + len(extra) == len(labels)
    assert np.bincount(labels[extra]).tolist() == [50] * 10
    again = models.carve_split(labels, 0.5)
    assert np.array_equal(again[1], extra)
