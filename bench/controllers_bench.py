"""Controller benchmark: learning speed on a synthetic task, and cost per sample+update.

Task: reward = fraction of the 42 decisions of the default MnasNet space that match a hidden
target architecture (controllers.synthetic.MatchTask). Reports best-so-far reward against the
number of samples (median, min, max over seeds) for the RNN controller (REINFORCE at the default
lr and at NASNet's 0.00035, PPO) and random search, and the wall time of one `sample(n)` +
`update` (median of repeats). An lr sweep for the RNN under a noisy observed reward (true
reward + N(0, 0.1)) backs the default learning rate.

    .venv/bin/python bench/controllers_bench.py [--quick]

Writes bench/results/controllers.json and prints tables.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, even if the installed package is stale

import torch

from controllers import create_controller
from controllers.synthetic import MatchTask, run_search
from controllers.base import Controller
from search_spaces import ArchSpec, MnasNetSpace

BATCH = 16
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "rnn-reinforce": ("rnn", {}),
    "rnn-ppo": ("rnn", {"algorithm": "ppo"}),
    "rnn-reinforce-lr0.00035": ("rnn", {"lr": 0.00035}),
    "random": ("random", {}),
}


class PseudoLatency:
    """Stand-in predictor for timing constrained random search (cost ~ a cheap table lookup)."""

    def predict(self, arch: ArchSpec) -> float:
        return sum(b.repeats * b.out_filters * b.kernel ** 2 * b.expansion
                   for b in arch.blocks) / 1000.0

    def predict_many(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        return np.array([self.predict(a) for a in archs])


def learning(space: MnasNetSpace, seeds: int, budget: int,
             checkpoints: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant, (name, kwargs) in VARIANTS.items():
        curves, reach, last, took = [], [], [], []
        for seed in range(seeds):
            task = MatchTask.random(space, 1000 + seed)
            start = time.perf_counter()
            controller = create_controller(name, space, seed=seed, **kwargs)
            trace = run_search(controller, task, budget=budget, batch=BATCH)
            took.append(time.perf_counter() - start)
            best = trace.best_so_far()
            curves.append([float(best[c - 1]) for c in checkpoints])
            hit = np.flatnonzero(best >= 0.8)
            reach.append(int(hit[0]) + 1 if hit.size else None)
            last.append(trace.last_batch_mean(BATCH))
        arr = np.asarray(curves)
        out[variant] = {
            "best_so_far": {str(c): {"median": float(np.median(arr[:, i])),
                                     "min": float(arr[:, i].min()), "max": float(arr[:, i].max())}
                            for i, c in enumerate(checkpoints)},
            "samples_to_best_0.8": reach,
            "last_batch_mean": [round(v, 4) for v in last],
            "seconds_per_run_median": statistics.median(took),
        }
        print(f"  {variant}: done ({statistics.median(took):.1f} s per run)", file=sys.stderr)
    return out


def lr_sweep(space: MnasNetSpace, seeds: int, budget: int, rates: list[tuple[str, float]],
             noise_std: float, checkpoints: list[int]) -> dict[str, Any]:
    """True mean reward of the batch ending at each checkpoint, under noisy observed rewards."""
    out: dict[str, Any] = {}
    for algorithm, lr in rates:
        rows = []
        for seed in range(seeds):
            task = MatchTask.random(space, 1000 + seed)
            controller = create_controller("rnn", space, seed=seed, lr=lr, algorithm=algorithm)
            trace = run_search(controller, task, budget=budget, batch=BATCH,
                               noise_std=noise_std, noise_seed=seed)
            rows.append([float(np.mean(trace.rewards[c - BATCH:c])) for c in checkpoints])
        arr = np.asarray(rows)
        out[f"{algorithm} lr={lr}"] = {str(c): {"median": float(np.median(arr[:, i])),
                                 "min": float(arr[:, i].min()), "max": float(arr[:, i].max())}
                        for i, c in enumerate(checkpoints)}
    return out


def timing(space: MnasNetSpace, batches: list[int], repeats: int) -> dict[str, Any]:
    makers: dict[str, Callable[[], Controller]] = {
        "rnn-reinforce": lambda: create_controller("rnn", space),
        "rnn-ppo (4 epochs)": lambda: create_controller("rnn", space, algorithm="ppo"),
        "random": lambda: create_controller("random", space),
        "constrained_random": lambda: create_controller(
            "constrained_random", space, predictor=PseudoLatency(), target_ms=70.0),
    }
    out: dict[str, Any] = {}
    for label, make in makers.items():
        out[label] = {}
        for n in batches:
            controller = make()
            controller.update(controller.sample(n), [0.5] * n)  # warm-up
            sample_s, update_s = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                samples = controller.sample(n)
                t1 = time.perf_counter()
                controller.update(samples, [float(j % 7) / 7 for j in range(n)])
                t2 = time.perf_counter()
                sample_s.append(t1 - t0)
                update_s.append(t2 - t1)
            out[label][str(n)] = {"sample_ms": 1000 * statistics.median(sample_s),
                                  "update_ms": 1000 * statistics.median(update_s),
                                  "total_ms": 1000 * statistics.median(
                                      [a + b for a, b in zip(sample_s, update_s)])}
    return out


def atomic_write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def print_tables(result: dict[str, Any]) -> None:
    checkpoints = result["config"]["checkpoints"]
    print(f"\nBest-so-far synthetic reward, median [min-max] over {result['config']['seeds']} "
          f"seeds (batch {BATCH})")
    print(f"{'controller':26s}" + "".join(f"{c:>19d}" for c in checkpoints) + "   to 0.8 (median)")
    for variant, row in result["learning"].items():
        cells = "".join(
            f"{'%.2f [%.2f-%.2f]' % (v['median'], v['min'], v['max']):>19s}"
            for v in row["best_so_far"].values())
        reach = [r for r in row["samples_to_best_0.8"] if r is not None]
        hits = f"{statistics.median(reach):.0f}" if len(reach) == len(row["samples_to_best_0.8"]) \
            else f"{len(reach)}/{len(row['samples_to_best_0.8'])} seeds"
        print(f"{variant:26s}{cells}   {hits}")
    sweep = result["lr_sweep"]
    print(f"\nRNN lr under a noisy reward (observed = true + N(0, {sweep['noise_std']})): "
          f"true mean reward of the batch ending at n samples, median [min-max]")
    print(f"{'controller':26s}" + "".join(f"{c:>19d}" for c in sweep["checkpoints"]))
    for lr, row in sweep["batch_mean"].items():
        print(f"{lr:26s}" + "".join(f"{'%.2f [%.2f-%.2f]' % (v['median'], v['min'], v['max']):>19s}"
                                    for v in row.values()))
    print("\nTime per sample(n) + update, median ms")
    print(f"{'controller':22s}" + "".join(f"{'n=' + n:>22s}" for n in
                                          next(iter(result["timing"].values()))))
    for label, row in result["timing"].items():
        print(f"{label:22s}" + "".join(
            f"{'%.1f (%.1f + %.1f)' % (v['total_ms'], v['sample_ms'], v['update_ms']):>22s}"
            for v in row.values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds, samples and repeats")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "controllers.json")
    args = parser.parse_args(argv)
    seeds, budget, repeats = (3, 320, 5) if args.quick else (5, 1000, 20)
    checkpoints = [c for c in (50, 100, 200, 320, 500, 1000) if c <= budget]
    space = MnasNetSpace()
    start = time.perf_counter()
    print("learning curves ...", file=sys.stderr)
    learn = learning(space, seeds, budget, checkpoints)
    print("lr sweep ...", file=sys.stderr)
    noise_std = 0.1
    rates = [("reinforce", lr) for lr in (0.00035, 0.001, 0.003, 0.01, 0.03)] + [("ppo", 0.003)]
    sweep_points = [c for c in checkpoints if c >= 100]
    sweep = {"noise_std": noise_std, "checkpoints": sweep_points,
             "batch_mean": lr_sweep(space, seeds, budget, rates, noise_std, sweep_points)}
    print("timing ...", file=sys.stderr)
    times = timing(space, [8, 64], repeats)
    result = {
        "benchmark": "controllers", "quick": args.quick,
        "command": "python bench/controllers_bench.py" + (" --quick" if args.quick else ""),
        "config": {"seeds": seeds, "budget": budget, "batch": BATCH, "checkpoints": checkpoints,
                   "timing_repeats": repeats, "task": "fraction of 42 decisions matching a "
                   "hidden target (MatchTask.random(space, 1000 + seed))"},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_avg_1min": os.getloadavg()[0]},
        "learning": learn, "lr_sweep": sweep, "timing": times,
        "wall_time_s": time.perf_counter() - start,
    }
    atomic_write(args.out, result)
    print_tables(result)
    print(f"\nwrote {args.out} in {result['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
