"""Search-loop overhead and parallel speed-up, measured on real children (digits 16x16).

Runs the same search (random controller, fixed seed, so both runs train the same architectures)
with 1 and then 2 Ray workers, and reports:

- overhead share: 1 - (sum of child training time) / (workers x loop wall time), i.e. the share
  of worker-time not spent training children (dispatch, controller, history/checkpoint writes,
  latency prediction, and idle tails), with and without Ray start-up;
- driver share: time the driver spends inside ask/tell (controller, predictor, fsync'd history,
  atomic checkpoint, TensorBoard) over the loop wall time;
- children per hour (loop only, start-up excluded) with 2 workers vs 1.

    .venv/bin/python bench/search_overhead_bench.py [--children 12] [--epochs 1]

Writes bench/results/search_overhead.json. The machine is shared: read ratios, not absolutes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnas.config import config_from_dict  # noqa: E402
from mnas.runner import create_executor, create_search  # noqa: E402

SPACE = {"input_size": 16, "num_classes": 10, "stem_filters": 8, "stem_stride": 1,
         "head_filters": 64, "width_divisor": 4,
         "base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 8, "layers": 1},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 12, "layers": 1},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 16, "layers": 2},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 24, "layers": 2},
                  {"kernel": 3, "stride": 1, "expansion": 6, "filters": 32, "layers": 1},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 48, "layers": 2},
                  {"kernel": 3, "stride": 1, "expansion": 6, "filters": 64, "layers": 1}]}


def make_config(workers: int, children: int, epochs: float, out: str):
    return config_from_dict({
        "name": f"bench-w{workers}", "seed": 0, "search_space": SPACE,
        "controller": {"name": "random"},
        "latency": {"predictor": "flops", "kwargs": {"ms_per_mmac": 1.0}, "target_ms": 0.5},
        "child_training": {"data": {"name": "digits", "input_size": 16}, "epochs": epochs,
                           "batch_size": 64, "lr": 0.1, "threads": 1},
        "ray": {"workers": workers, "cpus_per_child": 1},
        "budget": {"children": children, "batch": 4},
        "output": {"dir": out, "tensorboard": True, "plot": True}})


def timed(obj, name: str, bucket: list[float]) -> None:
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            bucket.append(time.perf_counter() - start)

    setattr(obj, name, wrapper)


def one_run(workers: int, children: int, epochs: float, out: str) -> dict:
    from mnas.distributed import shutdown_ray

    config = make_config(workers, children, epochs, out)
    run_dir = Path(out) / f"w{workers}"
    t0 = time.perf_counter()
    search = create_search(config, run_dir, resume=False)
    executor = create_executor(config)
    startup = time.perf_counter() - t0
    driver: list[float] = []
    timed(search, "ask", driver)
    timed(search, "tell", driver)
    t1 = time.perf_counter()
    search.run(executor, progress=False)
    loop = time.perf_counter() - t1
    executor.shutdown()
    search.close()
    shutdown_ray()
    train = [r["train_time_s"] for r in search.records if not r["cached"]]
    busy = sum(train)
    return {"workers": workers, "children": len(search.records), "trained": len(train),
            "startup_s": startup, "ray_init_s": executor.init_seconds,
            "actor_startup_s": executor.startup_seconds, "loop_s": loop,
            "child_train_s_median": statistics.median(train), "child_train_s_sum": busy,
            "overhead_share_loop": 1 - busy / (workers * loop),
            "overhead_share_with_startup": 1 - busy / (workers * (loop + startup)),
            "driver_share": sum(driver) / loop, "children_per_hour": 3600 * len(train) / loop}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=12)
    parser.add_argument("--epochs", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        runs = [one_run(w, args.children, args.epochs, out) for w in (1, 2)]
    one, two = runs
    result = {"runs": runs, "speedup_2_vs_1": two["children_per_hour"] / one["children_per_hour"],
              "args": vars(args)}
    path = ROOT / "bench" / "results" / "search_overhead.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    keys = ("children", "startup_s", "loop_s", "child_train_s_median", "overhead_share_loop",
            "overhead_share_with_startup", "driver_share", "children_per_hour")
    print(f"{'':28s}" + "".join(f"{'workers=' + str(r['workers']):>14s}" for r in runs))
    for key in keys:
        print(f"{key:28s}" + "".join(f"{r[key]:14.4g}" for r in runs))
    print(f"speed-up 2 workers vs 1: {result['speedup_2_vs_1']:.2f}x  -> {path}")


if __name__ == "__main__":
    main()
