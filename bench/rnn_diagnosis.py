"""Why the RNN controller does badly on NAS-Bench-201 under a hard constraint: instrumented runs.

Per controller update it records the policy's entropy (fraction of the uniform policy's), the
fraction of the batch over the latency target, the batch's median latency / target, the EMA
baseline against the batch's mean reward, the fraction of distinct architectures among the last
64 samples, and the best-so-far regret; for the old defaults and the current ones, on the four
hard-reward settings of the yardstick (NAS-Bench-201 CIFAR-10, Pixel 3 / Raspberry Pi 4, 25th /
50th latency percentiles), several seeds each.

    .venv/bin/python bench/rnn_diagnosis.py [--seeds 5] [--budget 600] [--table CSV]

Writes bench/results/rnn_diagnosis.json and .png and prints a table.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from yardstick_runs import run_controller
from yardstick_tasks import NB201_CSV, Nb201Table

#: The defaults (lr 0.003, entropy 1e-4, EMA baseline) and the risk-seeking variant.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults (EMA baseline)": {"advantage": "baseline"},
    "risk-seeking (top 10% of the last 64)": {"advantage": "risk_seeking"},
}
CHECKPOINTS = (40, 100, 200, 300, 400, 500, 600)


def instrument(task: Any, options: dict[str, Any], seed: int, budget: int,
               batch: int) -> dict[str, list[float]]:
    trace = run_controller(task, "rnn-reinforce", seed=seed, budget=budget, batch=batch,
                           options=options)
    max_entropy = sum(math.log(n) for n in task.sizes)
    rows: dict[str, list[float]] = {k: [] for k in (
        "samples", "entropy", "over_target", "latency_over_target", "baseline", "reward_mean",
        "distinct_last64", "regret")}
    keys = [tuple(row) for row in trace.actions.tolist()]
    for k, stats in enumerate(trace.stats):
        end = min((k + 1) * batch, budget)
        part = slice(k * batch, end)
        rows["samples"].append(end)
        rows["entropy"].append(stats["entropy"] / max_entropy)
        rows["over_target"].append(float(np.mean(trace.latency[part] > task.target_ms)))
        rows["latency_over_target"].append(float(np.median(trace.latency[part]))
                                           / task.target_ms)
        rows["baseline"].append(stats["baseline"])
        rows["reward_mean"].append(stats["reward_mean"])
        rows["distinct_last64"].append(len(set(keys[max(0, end - 64):end]))
                                       / len(keys[max(0, end - 64):end]))
        rows["regret"].append(task.optimum - float(trace.reward[:end].max()))
    return rows


def at(rows: dict[str, list[float]], key: str, n: int) -> float:
    i = int(np.searchsorted(rows["samples"], n))
    return rows[key][min(i, len(rows[key]) - 1)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, default=NB201_CSV)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--budget", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rnn_diagnosis.json")
    args = p.parse_args(argv)
    tasks = []
    for column in ("latency_ms_pixel3", "latency_ms_raspi4"):
        table = Nb201Table(args.table, "cifar10_test", column)
        tasks += [table.task(q, "hard") for q in (25, 50)]
    result: dict[str, Any] = {"benchmark": "rnn_diagnosis", "config": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "runs": {}}
    keys = ("entropy", "over_target", "latency_over_target", "distinct_last64", "regret")
    print(f"median over {args.seeds} seeds at n samples: entropy (fraction of uniform) | over "
          f"target | median latency / T | distinct of last 64 | regret")
    for variant, options in VARIANTS.items():
        result["runs"][variant] = {}
        for task in tasks:
            runs = [instrument(task, options, 100 + s, args.budget, args.batch)
                    for s in range(args.seeds)]
            result["runs"][variant][task.name] = runs
            print(f"\n{variant} / {task.name} (T = {task.target_ms:.2f} ms, optimum at "
                  f"{task.info['optimum_latency_ms']:.2f} ms)")
            for n in CHECKPOINTS:
                if n > args.budget:
                    continue
                cells = [float(np.median([at(r, key, n) for r in runs])) for key in keys]
                print(f"  n={n:4d}  " + "  ".join(f"{c:6.2f}" for c in cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("entropy", "over_target", "latency_over_target", "distinct_last64", "regret")
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4))
    for v, tasks in enumerate(result["runs"].values()):
        for t, (task, runs) in enumerate(tasks.items()):
            for ax, key in zip(axes, keys):
                xs = runs[0]["samples"]
                ys = np.median([r[key] for r in runs], axis=0)
                ax.plot(xs, ys, color=f"C{t}", ls="-" if v else "--", lw=1.2,
                        label=f"{task[6:]} ({'risk' if v else 'EMA'})")
    for ax, key in zip(axes, keys):
        ax.set_title(key.replace("_", " "), fontsize=10)
        ax.set_xlabel("samples")
        ax.grid(alpha=0.3)
    axes[-1].set_yscale("symlog", linthresh=0.1)
    axes[0].legend(fontsize=6)
    fig.suptitle("RNN controller on NAS-Bench-201, hard reward: EMA baseline dashed, "
                 "risk-seeking solid (median over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
