"""Small inputs (32x32): which latency predictor to make the default, measured side by side.

Networks that run in well under a millisecond are where summed isolated layers fit worst. This
compares, on the same fresh architectures timed end to end (never the table's calibration ones):

- `lut`, one pass: the table's first timing of every entry, calibrated as usual;
- `lut`, all passes: the table as built (the default: 2 passes, best of them with `min`);
- an in-network table: onnxruntime's own per-node profile of each *whole* network, summed. A
  per-block table split out of such profiles can rank networks no better than the sum over the
  very network being ranked, so this sum is that approach's ceiling;
- a learned correction: `lut` times exp(gradient-boosted trees) fitted on the log residual from
  one-hot decisions and per-block shares, scored by 5-fold cross-validation on the measured
  architectures (so it sees up to 80% of them, far more than the table's 40 samples);
- `flops`, and the measurement against itself (a second timing of every architecture).

    .venv/bin/python bench/latency_small_inputs.py [--samples 120] [--table FILE]

The table defaults to runs/latency/bench_32_min.json from bench/latency_bench.py (built if
missing). Writes bench/results/latency_small_inputs.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from latency import load_table, make_profiler
from latency.build import VALIDATION_SEED, build_table, validation_actions
from latency.keys import arch_onnx
from latency.options import BuildOptions
from latency.predictors import FlopsPredictor, LutPredictor
from latency.profiler import Profiler
from latency.validate import fidelity, measure_archs
from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec

from latency_bench import first_pass_predictor


def learned_correction(space: MnasNetSpace, lut: LutPredictor, actions: list[list[int]],
                       measured: np.ndarray, folds: int = 5) -> np.ndarray:
    """Out-of-fold predictions of lut x exp(GBM(one-hot decisions, per-block lut shares))."""
    from sklearn.ensemble import GradientBoostingRegressor

    archs = [space.decode(a) for a in actions]
    base = lut.predict_many(archs)
    shares = lut.features(archs)["blocks"] / lut.features(archs)["lut"][:, None]
    acts = np.asarray(actions)
    onehot = np.hstack([np.eye(d.size)[acts[:, j]] for j, d in enumerate(space.decisions)])
    x, target = np.hstack([onehot, shares]), np.log(measured / base)
    out = np.empty(len(measured))
    order = np.random.default_rng(0).permutation(len(measured))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        model = GradientBoostingRegressor(n_estimators=200, max_depth=2, learning_rate=0.05,
                                          subsample=0.8, random_state=0)
        model.fit(x[train], target[train])
        out[test] = base[test] * np.exp(model.predict(x[test]))
    return out


def node_profile_sums(space: MnasNetSpace, archs: list[ArchSpec], profiler: Profiler,
                      runs: int) -> np.ndarray:
    return np.array([sum(profiler.node_profile(arch_onnx(space, a), runs=runs).values())
                     for a in archs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=120)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--table", type=Path)
    ap.add_argument("--profile-runs", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                    "latency_small_inputs.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = MnasNetSpace(input_size=args.size)
    profiler = make_profiler({"statistic": "min"})
    path = args.table or ROOT / "runs" / "latency" / f"bench_{args.size}_min.json"
    if not path.exists() or not load_table(path).complete:
        build_table(space, profiler, path, BuildOptions(), progress=True)
    table = load_table(path)
    started = time.time()
    actions = validation_actions(space, args.samples, VALIDATION_SEED + 7,
                                 [s["actions"] for s in table.samples])
    archs = [space.decode(a) for a in actions]
    first = np.array([m.ms for m in measure_archs(space, archs, profiler)])
    nodes = node_profile_sums(space, archs, profiler, args.profile_runs)
    second = np.array([m.ms for m in measure_archs(space, archs, profiler)])
    measured = (first + second) / 2
    lut = LutPredictor(space, table)
    preds = {
        "lut, first pass only": first_pass_predictor(space, table).predict_many(archs),
        f"lut, {len(next(iter(table.entries.values())).get('passes_ms', [0]))} passes "
        "(default)": lut.predict_many(archs),
        "in-network: onnxruntime per-node profile, summed": nodes,
        "lut x learned correction (5-fold CV)": learned_correction(space, lut, actions,
                                                                   measured),
        "flops": FlopsPredictor(space, table).predict_many(archs),
        "the measurement itself (2nd timing vs 1st)": second,
    }
    rows = {name: fidelity(p, measured if "itself" not in name else first)
            for name, p in preds.items()}
    result = {"command": "python bench/latency_small_inputs.py " + " ".join(sys.argv[1:]),
              "input_size": args.size, "samples": len(archs), "table": str(path),
              "calibration": lut.calibration, "seconds": round(time.time() - started, 1),
              "ground_truth": "mean of two end-to-end timings (min of 3x30 runs each)",
              "results": rows, "per_arch": {"actions": actions, "first_ms": first.tolist(),
                                            "second_ms": second.tolist(),
                                            "node_sum_ms": nodes.tolist()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(args.out)
    print(f"{args.size}x{args.size}, {len(archs)} fresh architectures; ground truth = "
          f"{result['ground_truth']}")
    print(f"{'predictor':52s}{'MAPE':>7s}{'±10%':>7s}{'tau':>7s}{'rho':>7s}")
    for name, r in rows.items():
        print(f"{name:52s}{r['mape']:7.1%}{r['within_10pct']:7.0%}{r['kendall_tau']:7.3f}"
              f"{r['spearman_rho']:7.3f}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
