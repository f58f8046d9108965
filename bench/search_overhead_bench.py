"""Search-loop overhead and parallel speed-up, measured on real children (digits 16x16).

Runs the same search (random controller, fixed seed, so both runs train the same architectures)
with 1 and then 2 Ray workers, and reports:

- overhead share: 1 - (sum of child training time) / (workers x loop wall time), i.e. the share
  of worker-time not spent training children (dispatch, controller, history/checkpoint writes,
  latency prediction, and idle tails), with and without Ray start-up;
- steady overhead share: per child, the dispatch overhead (executor-measured wall time minus the
  child's own training time) plus the refill gap (result at the driver -> next child handed
  out), over the whole worker cycle; the rest of the loop overhead is the idle tail at the end
  (`tail_share`: the last children finishing while other workers have nothing left to do);
- driver share: time the driver spends inside ask/tell (controller, predictor, fsync'd history,
  atomic checkpoint, TensorBoard) over the loop wall time;
- children per hour (loop only, start-up excluded) with 2 workers vs 1; and the steady-state
  speed-up, the same ratio over the worker cycle (training + dispatch + refill, i.e. without the
  end-of-run tail), which is what a search of hundreds of children sees; next to the same
  children trained by 1 vs 2 plain processes without Ray (what the machine gives right now: on a
  machine shared with other jobs two processes may not get two cores).

    .venv/bin/python bench/search_overhead_bench.py [--children 12] [--epochs 1] [--repeats 3]

Writes bench/results/search_overhead.json (or --out). The machine is shared: read ratios, not
absolutes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnas.config.schema import ExperimentConfig, config_from_dict
from mnas.search.executor import Executor, Outcome
from mnas.search.loop import Trial
from mnas.search.runner import create_executor, create_search

SPACE = {"input_size": 16, "num_classes": 10, "stem_filters": 8, "stem_stride": 1,
         "head_filters": 64, "width_divisor": 4,
         "base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 8, "layers": 1},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 12, "layers": 1},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 16, "layers": 2},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 24, "layers": 2},
                  {"kernel": 3, "stride": 1, "expansion": 6, "filters": 32, "layers": 1},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 48, "layers": 2},
                  {"kernel": 3, "stride": 1, "expansion": 6, "filters": 64, "layers": 1}]}


def make_config(workers: int, children: int, epochs: float, out: str) -> ExperimentConfig:
    return config_from_dict({
        "name": f"bench-w{workers}", "seed": 0, "search_space": SPACE,
        "controller": {"name": "random"},
        "latency": {"predictor": "flops", "kwargs": {"ms_per_mmac": 1.0}, "target_ms": 0.5},
        "child_training": {"data": {"name": "digits", "input_size": 16}, "epochs": epochs,
                           "batch_size": 64, "lr": 0.1, "threads": 1},
        "ray": {"workers": workers, "cpus_per_child": 1},
        "budget": {"children": children, "batch": 4},
        "output": {"dir": out, "tensorboard": True, "plot": True}})


def timed(obj: object, name: str, bucket: list[float]) -> None:
    original: Callable[..., Any] = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            bucket.append(time.perf_counter() - start)

    setattr(obj, name, wrapper)


def watch_refills(executor: Executor) -> list[float]:
    """Seconds from a result reaching the driver to the next child being handed out: the time a
    freed worker waits on the loop (controller, history fsync, checkpoint, TensorBoard)."""
    gaps: list[float] = []
    returned: list[float] = []
    wait, submit = executor.wait, executor.submit

    def timed_wait() -> list[tuple[Trial[Any], Outcome]]:
        out = wait()
        returned.extend([time.perf_counter()] * len(out))
        return out

    def timed_submit(trial: Trial[Any]) -> None:
        if returned:
            gaps.append(time.perf_counter() - returned.pop(0))
        submit(trial)

    # instance attributes shadow the methods (mypy refuses assigning to a method)
    vars(executor).update(wait=timed_wait, submit=timed_submit)
    return gaps


def one_run(workers: int, children: int, epochs: float, out: str) -> dict[str, Any]:
    from mnas.search.ray_pool import RayExecutor, shutdown_ray

    config = make_config(workers, children, epochs, out)
    run_dir = Path(out) / f"w{workers}"
    t0 = time.perf_counter()
    search = create_search(config, run_dir, resume=False)
    executor = create_executor(config)
    if not isinstance(executor, RayExecutor):
        raise SystemExit(f"expected a Ray executor for {workers} workers, got {executor!r}")
    startup = time.perf_counter() - t0
    driver: list[float] = []
    timed(search, "ask", driver)
    timed(search, "tell", driver)
    gaps = watch_refills(executor)
    t1 = time.perf_counter()
    search.run(executor, progress=False)
    loop = time.perf_counter() - t1
    executor.shutdown()
    search.close()
    shutdown_ray()
    # (training, dispatch-to-result) seconds of every child trained in this run
    trained = [(r.train_time_s, r.wall_time_s) for r in search.records
               if not r.cached and r.train_time_s is not None and r.wall_time_s is not None]
    train = [t for t, _ in trained]
    busy = sum(train)
    dispatch = sum(wall - t for t, wall in trained)
    cycle = busy + dispatch + sum(gaps)
    return {"workers": workers, "children": len(search.records), "trained": len(train),
            "startup_s": startup, "ray_init_s": executor.init_seconds,
            "actor_startup_s": executor.startup_seconds, "loop_s": loop,
            "child_train_s_median": statistics.median(train), "child_train_s_sum": busy,
            "overhead_share_loop": 1 - busy / (workers * loop),
            "overhead_share_with_startup": 1 - busy / (workers * (loop + startup)),
            "driver_share": sum(driver) / loop, "children_per_hour": 3600 * len(train) / loop,
            "dispatch_s_median": statistics.median(wall - t for t, wall in trained),
            "refill_gap_s_median": statistics.median(gaps) if gaps else 0.0,
            "steady_overhead_share": 1 - busy / cycle,
            "steady_children_per_hour": 3600 * len(train) * workers / cycle,
            "tail_share": (workers * loop - cycle) / (workers * loop)}


def _train_many(args: tuple[int, float, list[int]]) -> float:
    """Worker of the no-Ray reference: train the given children, return the seconds."""
    children, epochs, seeds = args
    import numpy as np
    import torch

    from mnas.training.trainer import train_child

    torch.set_num_threads(1)
    config = make_config(1, children, epochs, tempfile.gettempdir())
    train_child(config.space.sample(np.random.default_rng(99)), config.child_training)  # warm
    start = time.perf_counter()
    for seed in seeds:
        train_child(config.space.sample(np.random.default_rng(seed)), config.child_training)
    return time.perf_counter() - start


def machine_ceiling(children: int, epochs: float) -> dict[str, Any]:
    """What this machine gives right now without Ray: the same kind of children trained by 1
    process, then split over 2 processes side by side (the best a 2-worker pool could do)."""
    import multiprocessing as mp

    seeds = list(range(children))
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        one = pool.map(_train_many, [(children, epochs, seeds)])[0]
    with ctx.Pool(2) as pool:
        two = max(pool.map(_train_many, [(children, epochs, seeds[0::2]),
                                         (children, epochs, seeds[1::2])]))
    return {"one_process_s": one, "two_processes_s": two, "speedup": one / two}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=12)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/search_overhead.json")
    args = parser.parse_args()
    rounds = []
    for i in range(args.repeats):  # interleaved: load from other jobs hits both alike
        with tempfile.TemporaryDirectory() as out:
            order = (1, 2) if i % 2 == 0 else (2, 1)
            runs = sorted((one_run(w, args.children, args.epochs, out) for w in order),
                          key=lambda r: r["workers"])
        ceiling = machine_ceiling(args.children, args.epochs)
        speedup = runs[1]["children_per_hour"] / runs[0]["children_per_hour"]
        steady = runs[1]["steady_children_per_hour"] / runs[0]["steady_children_per_hour"]
        rounds.append({"runs": runs, "speedup_2_vs_1": speedup, "steady_speedup_2_vs_1": steady,
                       "no_ray_reference": ceiling})
        print(f"round {i + 1}: Ray 2 vs 1 workers {speedup:.2f}x (steady state {steady:.2f}x), "
              f"plain processes {ceiling['speedup']:.2f}x", flush=True)
    med = statistics.median
    summary = {
        "speedup_2_vs_1_median": med(r["speedup_2_vs_1"] for r in rounds),
        "steady_speedup_2_vs_1_median": med(r["steady_speedup_2_vs_1"] for r in rounds),
        "no_ray_speedup_median": med(r["no_ray_reference"]["speedup"] for r in rounds),
        **{f"{key}_w{w}_median": med(r["runs"][w - 1][key] for r in rounds)
           for key in ("overhead_share_loop", "overhead_share_with_startup", "driver_share",
                       "children_per_hour", "startup_s", "ray_init_s", "actor_startup_s",
                       "child_train_s_median", "steady_overhead_share", "tail_share",
                       "steady_children_per_hour",
                       "dispatch_s_median", "refill_gap_s_median") for w in (1, 2)}}
    result = {"summary": summary, "rounds": rounds, "args": vars(args)}
    path = ROOT / args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    title = f"median over {args.repeats} rounds"
    print(f"{title:30s}{'workers=1':>12s}{'workers=2':>12s}")
    for key in ("children_per_hour", "steady_children_per_hour", "child_train_s_median",
                "overhead_share_loop",
                "steady_overhead_share", "tail_share", "overhead_share_with_startup",
                "driver_share", "dispatch_s_median", "refill_gap_s_median", "startup_s",
                "ray_init_s"):
        print(f"{key:30s}{summary[key + '_w1_median']:12.4g}{summary[key + '_w2_median']:12.4g}")
    print(f"speed-up 2 vs 1 workers (median of rounds): {summary['speedup_2_vs_1_median']:.2f}x, "
          f"steady state {summary['steady_speedup_2_vs_1_median']:.2f}x; "
          f"same children, 1 vs 2 plain processes without Ray: "
          f"{summary['no_ray_speedup_median']:.2f}x -> {path}")


if __name__ == "__main__":
    main()
