"""Supernet evaluation throughput: children scored per hour by `evaluator: supernet` in a real
search on a Ray pool (target: >= 3,000 an hour with 2 workers at 32x32, CIFAR-10 space).

Each setting (`RECAL:VAL` = supernet.recalibration_batches : supernet.val_images) runs one
search of `--children` children through the same runner as `mnas search` (controller, history,
checkpoints; latency by FLOPs so no lookup table has to be built), on one Ray instance; the
throughput counts children scored (cache hits excluded) over the search's wall time, Ray start-up
and the workers' supernet builds excluded (they are paid once per search, reported apart). Before
that, a few children are profiled in this process: seconds in BN recalibration vs validation.
The supernet's weights do not change the cost of scoring, so without `--checkpoint` a supernet
trained for `--train-epochs` (a few steps) is used. The load average (os.getloadavg) before and
after every phase is recorded: the machine is shared.

    python bench/supernet_throughput.py --data /work/shared/data/cifar10-jpeg-train.npz \\
        --settings 8:2000 4:1000 2:500 --children 60 --out bench/results/supernet_throughput.json
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnas.config.schema import load_config
from mnas.fileio import atomic_write_json

TARGET_PER_HOUR = 3000


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _config(args: argparse.Namespace, checkpoint: Path, recal: int, val: int, runs: Path) -> Any:
    return load_config(args.config, [
        f"child_training.data.path={args.data}", "latency.predictor=flops", "latency.table=null",
        "latency.kwargs={ms_per_mmac: 0.01}", "evaluator.name=supernet",
        f"supernet.checkpoint={checkpoint}", f"supernet.recalibration_batches={recal}",
        f"supernet.val_images={val}", f"budget.children={args.children}",
        f"ray.workers={args.workers}", f"output.dir={runs}", "output.tensorboard=false",
        "output.plot=false"])


def _profile(config: Any, children: int) -> dict[str, float]:
    """Seconds per child in BN recalibration and in the validation pass (this process)."""
    from mnas.supernet.evaluation import load_scorer
    from mnas.training.trainer import torch_threads

    scorer = load_scorer(Path(config.supernet.checkpoint), config.space, config.child_training,
                         config.supernet)
    rng = np.random.default_rng(1)
    recal = val = 0.0
    with torch_threads(config.child_training.threads):
        for _ in range(children):
            trainer = scorer._view_trainer(config.space.sample(rng))
            # recalibrated by hand below (timed apart), so evaluate() must not do it again
            trainer.config = replace(trainer.config, bn_recalibration=0)
            start = time.perf_counter()
            trainer.recalibrate_bn(config.supernet.recalibration_batches)
            middle = time.perf_counter()
            trainer.evaluate()
            recal, val = recal + middle - start, val + time.perf_counter() - middle
    return dict(recal_s=round(recal / children, 3), val_s=round(val / children, 3))


def _search(config: Any, run: Path) -> dict[str, Any]:
    from mnas.search.history import load_history
    from mnas.search.runner import create_evaluator, create_executor, create_search

    evaluator = create_evaluator(config)
    start = time.perf_counter()
    executor = create_executor(config, evaluator=evaluator)
    ready = time.perf_counter() - start
    try:
        search = create_search(config, run, resume=False)
        start = time.perf_counter()
        search.run(executor, progress=False)
        seconds = time.perf_counter() - start
        search.close()
    finally:
        executor.shutdown()
    records = [r for r in load_history(run / "history.jsonl") if not r.cached]
    ok = [r for r in records if r.status == "ok"]
    worker = float(np.mean([r.train_time_s for r in ok])) if ok else float("nan")
    dispatch = float(np.mean([r.wall_time_s for r in ok])) if ok else float("nan")
    return dict(scored=len(records), ok=len(ok), search_s=round(seconds, 1),
                pool_ready_s=round(ready, 1), per_hour=round(len(records) / seconds * 3600),
                worker_s_per_child=round(worker, 3), dispatch_s_per_child=round(dispatch, 3),
                workers=sorted({r.worker for r in ok if r.worker}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "cifar10.yaml"))
    p.add_argument("--data", required=True, help="child_training.data.path (CIFAR-10 .npz)")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--train-epochs", type=float, default=0.03)
    p.add_argument("--settings", nargs="+", default=["8:2000", "2:500"], help="RECAL:VAL")
    p.add_argument("--children", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--profile", type=int, default=4, help="children profiled in-process")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/supernet_throughput.json")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sn-throughput-"))
    checkpoint = args.checkpoint or work / "supernet.pt"
    state: dict[str, Any] = dict(config=args.config, children=args.children,
                                 workers=args.workers, cpus=os.cpu_count(),
                                 target_per_hour=TARGET_PER_HOUR, load_start=_load(), rows=[])
    if not checkpoint.exists():
        from mnas.supernet.training import train_supernet

        config = _config(args, checkpoint, 8, 2000, work)
        train_supernet(config.space, config.child_training,
                       replace(config.supernet, epochs=args.train_epochs), checkpoint)
    from mnas.search.ray_pool import init_ray, shutdown_ray

    try:
        for setting in args.settings:
            recal, val = (int(v) for v in setting.split(":"))
            config = _config(args, checkpoint, recal, val, work)
            row: dict[str, Any] = dict(recal_batches=recal, val_images=val,
                                       batch_size=config.child_training.batch_size,
                                       load_before=_load())
            row.update(_profile(config, args.profile))
            init_ray(num_cpus=max(os.cpu_count() or 1, args.workers))
            row.update(_search(config, work / f"run-{recal}-{val}"), load_after=_load())
            state["rows"].append(row)
            print(f"{setting}: {row['per_hour']} children/h", flush=True)
            atomic_write_json(args.out, dict(state, load_end=_load()), indent=1)
    finally:
        shutdown_ray()
    print(f"{'recal x batch':>13} {'val':>5} {'recal s':>8} {'val s':>6} {'worker s':>9} "
          f"{'dispatch s':>10} {'children/h':>10} {'target':>7} {'load':>16}")
    for r in state["rows"]:
        met = "met" if r["per_hour"] >= TARGET_PER_HOUR else "MISSED"
        print(f"{r['recal_batches']:>5} x {r['batch_size']:<5} {r['val_images']:>5} "
              f"{r['recal_s']:>8} {r['val_s']:>6} {r['worker_s_per_child']:>9} "
              f"{r['dispatch_s_per_child']:>10} {r['per_hour']:>10} {met:>7} "
              f"{str(r['load_before'][0]) + '->' + str(r['load_after'][0]):>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
