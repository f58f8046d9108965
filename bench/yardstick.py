"""Yardstick benchmark: how fast each controller finds the best architecture of a known table.

NAS-Bench-201 (CIFAR-10 test accuracy, real-device latency columns) at the 25th and 50th
latency percentiles under the hard and soft MnasNet reward. Every mnas controller (RNN REINFORCE,
RNN PPO, random, constrained random, evolution) and Optuna's TPE sampler search the same reward,
in-process, with controller updates every `--batch` samples as `mnas search` does.

This is an ORACLE reward: the table's final test accuracy (after 200 epochs) is the reward, so it
measures how fast a controller finds the best of a known table, not how well a search
generalises from a cheap proxy. `--noise SIGMA` adds seeded N(0, SIGMA) to every accuracy a
controller is told (the best found is then the best *observed*, scored by its true reward).

Regret = optimum reward - reward of the best found architecture (reward points; under the hard
reward a qualifying architecture's reward is its accuracy). The NAS-Bench-201 optimum is exact
(all 15,625 cells enumerated).

    .venv/bin/python bench/yardstick.py                 # everything (hours on a busy 2-core VM)
    .venv/bin/python bench/yardstick.py --quick              # 3 seeds, budgets to 500
    .venv/bin/python bench/yardstick.py --latency-column latency_ms_fpga --percentiles 25
    .venv/bin/python bench/yardstick.py --space ofa --rewards hard   # OFA Note10 at 25 ms

TPE needs Optuna, a bench-only dependency: .venv/bin/pip install -c constraints.txt optuna.
Writes bench/results/yardstick.json (OFA: yardstick_ofa.json) and a .png, and prints tables.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


# one BLAS / OpenMP thread per process (seeds run in parallel with --jobs instead): OFA's
# predictor multiplies small matrices, which multi-threaded OpenBLAS made 17x slower on the
# loaded 2-core machine (set before numpy and torch load)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, even if the installed package is stale
sys.path.insert(0, str(ROOT / "bench"))

from yardstick_report import (markdown_table, picks, plot, print_table, summarize,
                              targets_nb201, targets_ofa)
from yardstick_runs import CONTROLLERS, PEERS, TPE_INSTALL, run
from yardstick_tasks import NB201_CSV, OFA_DIR, Nb201Table, OfaTask, Task

NB201_BUDGETS = [50, 100, 200, 500, 1000, 2000]
OFA_BUDGETS = [50, 100, 200, 500, 1000, 2000, 5000, 10000]
RESULTS = ROOT / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", choices=["nasbench201", "ofa"], default="nasbench201",
                   help="the NAS-Bench-201 table, or OFA MobileNetV3 on a Note10")
    p.add_argument("--ofa-dir", type=Path, default=OFA_DIR,
                   help="folder with acc_predictor.npz and the {160..224}_lookup_table.yaml")
    p.add_argument("--target-ms", type=float, default=25.0, help="OFA's latency target")
    p.add_argument("--table", type=Path, default=NB201_CSV,
                   help="NAS-Bench-201-format CSV (arch, accuracy and latency columns)")
    p.add_argument("--accuracy-column", default="cifar10_test")
    p.add_argument("--latency-column", action="append", default=None,
                   help="latency column (repeatable; default latency_ms_pixel3 and "
                        "latency_ms_raspi4)")
    p.add_argument("--percentiles", type=float, nargs="+", default=[25.0, 50.0],
                   help="latency targets as percentiles of the column")
    p.add_argument("--rewards", nargs="+", choices=["hard", "soft"], default=["hard", "soft"])
    p.add_argument("--controllers", nargs="*", default=list(CONTROLLERS) + list(PEERS),
                   choices=list(CONTROLLERS) + list(PEERS))
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budgets", type=int, nargs="+", default=None,
                   help="default 50 ... 2,000 (OFA: 50 ... 10,000)")
    p.add_argument("--tpe-budget", type=int, default=500,
                   help="TPE's largest budget (its cost grows with the square of the samples: "
                        "2,000 take about 90 s per run here)")
    p.add_argument("--batch", type=int, default=8, help="samples per controller update")
    p.add_argument("--noise", type=float, default=0.0,
                   help="std (accuracy points) of seeded noise on every accuracy told")
    p.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    p.add_argument("--jobs", type=int, default=1, help="processes (seeds run in parallel)")
    p.add_argument("--quick", action="store_true", help="3 seeds, budgets up to 500")
    p.add_argument("--update", action="store_true",
                   help="keep the other controllers' runs already in --out (same task, budgets)")
    p.add_argument("--merge", nargs="+", type=Path, default=[],
                   help="also keep the runs in these result files (same task, budgets)")
    p.add_argument("--out", type=Path, default=None,
                   help="default bench/results/yardstick.json (OFA: yardstick_ofa.json)")
    args = p.parse_args(argv)
    ofa = args.space == "ofa"
    args.budgets = args.budgets or (OFA_BUDGETS if ofa else NB201_BUDGETS)
    args.out = args.out or RESULTS / ("yardstick_ofa.json" if ofa else "yardstick.json")
    if args.quick:
        args.seeds = 3
        args.budgets = [b for b in args.budgets if b <= 500]
    if args.seeds < 1 or args.batch < 1 or args.noise < 0 or min(args.budgets) < 1:
        p.error("--seeds, --batch and --budgets must be positive, --noise >= 0")
    if "tpe" in args.controllers:
        if importlib.util.find_spec("optuna") is None:
            p.exit(2, f"yardstick: tpe: optuna is not installed. {TPE_INSTALL}\n")
    args.latency_column = args.latency_column or ["latency_ms_pixel3", "latency_ms_raspi4"]
    return args


_TASK: Task | None = None  # the task the pool's forked workers run (set before forking)


def _one(job: tuple[Any, ...]) -> list[list[float]]:
    name, seed, budget, batch, noise, budgets = job
    assert _TASK is not None
    return picks(run(_TASK, name, seed=seed, budget=budget, batch=batch, noise=noise), budgets)


def run_task(task: Task, args: argparse.Namespace, budgets: list[int], tpe_budget: int,
             seeds: int, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Run the requested controllers; keep the other controllers' runs of `previous` (the same
    task in an earlier result file) when it used the same budgets, so a bench can be completed
    or re-run one controller at a time."""
    runs: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    seed_ids: dict[str, list[int]] = {}
    if previous and previous.get("budgets") == budgets:
        runs, seconds = dict(previous["runs"]), dict(previous["seconds"])
        seed_ids = dict(previous.get("seed_ids", {}))
    for name in args.controllers:
        budget = min(max(budgets), tpe_budget) if name == "tpe" else max(budgets)
        start = time.perf_counter()
        jobs = [(name, s, budget, args.batch, args.noise, budgets)
                for s in range(args.first_seed, args.first_seed + seeds)]
        global _TASK
        _TASK = task
        if args.jobs > 1:
            with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
                runs[name] = pool.map(_one, jobs)
        else:
            runs[name] = [_one(job) for job in jobs]
        seconds[name] = time.perf_counter() - start
        seed_ids[name] = [job[1] for job in jobs]
        print(f"  {task.name} {name}: {seconds[name]:.0f} s", file=sys.stderr, flush=True)
    reference = task.optimum
    if reference is None:  # no exact optimum: the best true reward any run (or OFA) found
        reference = max([p[0] for r in runs.values() for seed in r for p in seed]
                        + [task.info.get("known_reward", float("-inf"))])
    return {"target_ms": task.target_ms, "reward": task.reward, "optimum": task.optimum,
            "reference_reward": reference, "info": task.info, "budgets": budgets,
            "seconds": seconds, "seed_ids": seed_ids,
            "summary": summarize(runs, budgets, reference), "runs": runs}


def make_tasks(args: argparse.Namespace) -> list[Task]:
    if args.space == "ofa":
        ofa = OfaTask(args.ofa_dir)
        return [ofa.task(args.target_ms, r) for r in args.rewards]
    out = []
    for column in args.latency_column:
        table = Nb201Table(args.table, args.accuracy_column, column)
        out += [table.task(p, r) for r in args.rewards for p in args.percentiles]
    return out


def merge_runs(kept: dict[str, Any], entry: dict[str, Any]) -> None:
    """Add `entry`'s runs to `kept` (one task, same budgets): a controller's runs of other seeds
    are appended (a bench run in chunks of seeds), runs of the same seeds replace the old ones."""
    kept.setdefault("seed_ids", {})
    for name, runs in entry["runs"].items():
        old, new = kept["seed_ids"].get(name), entry.get("seed_ids", {}).get(name)
        if name in kept["runs"] and old and new and not set(old) & set(new):
            kept["runs"][name] = kept["runs"][name] + runs
            kept["seed_ids"][name] = old + new
            kept["seconds"][name] = kept["seconds"].get(name, 0.0) + entry["seconds"][name]
        else:
            kept["runs"][name] = runs
            kept["seconds"][name] = entry["seconds"][name]
            if new:
                kept["seed_ids"][name] = new
            else:
                kept["seed_ids"].pop(name, None)


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tasks = make_tasks(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"yardstick: {exc}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "benchmark": "yardstick", "command": "python bench/yardstick.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "oracle": "reward from the table's final test accuracy: how fast the best of a known "
                  "table is found, not generalisation",
        "config": json.loads(json.dumps(vars(args), default=str)),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1min_start": os.getloadavg()[0], "shared": True},
        "tasks": {}}
    sources = ([args.out] if args.update and args.out.exists() else []) + list(args.merge)
    for source in sources:  # earlier results to keep (later files win for the same runs)
        old = json.loads(Path(source).read_text())
        for name, entry in old.get("tasks", {}).items():
            kept = result["tasks"].setdefault(name, entry)
            if kept is not entry and kept.get("budgets") == entry.get("budgets"):
                merge_runs(kept, entry)
        result["command"] = old.get("command", "") + " ; " + result["command"]
    start = time.perf_counter()
    for task in tasks:
        budgets = args.budgets
        entry = run_task(task, args, budgets, args.tpe_budget, args.seeds,
                         result["tasks"].get(task.name))
        if args.space == "ofa":
            entry["targets"] = {c: targets_ofa(entry["summary"], c) for c in entry["summary"]
                                if c != "tpe"}
        elif "random" in entry["summary"]:
            entry["targets"] = {c: targets_nb201(entry["summary"], c)
                                for c in ("rnn-reinforce", "rnn-ppo") if c in entry["summary"]}
        result["tasks"][task.name] = entry
        result["wall_time_s"] = time.perf_counter() - start
        save(args.out, result)  # after every task: an interrupted run keeps what it measured
        print_table(task.name, entry["summary"], budgets)
        if args.markdown:
            print("\n" + markdown_table(task.name, entry, budgets))
            if args.space == "ofa":
                print("\n" + markdown_table(task.name, entry, budgets, metric="accuracy"))
    plot(result, args.out.with_suffix(".png"))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')} "
          f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
