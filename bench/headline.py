"""The headline benchmark: does the search beat width-scaled MobileNetV2 and random search here?

Stages, each resumable (state under --work, default runs/headline; rerun the same command after an
interruption and finished work is kept):

  data     the search split of the shared CIFAR-10 (80% of the training split, seeded) is written
           to <work>/search_data.npz; the other 20% is held out for the final comparison only.
  target   T = MobileNetV2 x0.5's latency measured end to end (onnxruntime, 1 thread, batch 1).
  matched  for each lightweight family (MobileNetV1, ShuffleNetV2, GhostNet, SqueezeNet,
           EfficientNet-B0), the width whose measured latency at 32x32 is closest to T.
  search   `mnas search experiments/headline_cifar10.yaml` per method and seed (same budget, same
           proxy recipe, same lut table), each in its own run directory (resumed if interrupted).
  final    every baseline and the best architecture (by reward) of every search retrained with one
           fixed recipe on the search split, evaluated on the held-out 20%, 2 training seeds.
  latency  every final model measured end to end, interleaved over rounds (median, spread).
  report   bench/results/headline.json, bench/results/headline.png and a printed table
           (bench/headline_report.py).

  .venv/bin/python bench/headline.py [--seeds 3] [--children 24] [--final-epochs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mnas.fileio import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg-train.npz"
CONFIG = REPO / "experiments" / "headline_cifar10.yaml"
METHODS = ("rnn", "random", "constrained_random")
#: Baselines: MobileNetV2 at four widths and the two MnasNets at the width of the target (x0.5).
BASELINES = ("mobilenet_v2@0.35", "mobilenet_v2@0.5", "mobilenet_v2@0.75", "mobilenet_v2@1.0",
             "mnasnet_a1@0.5", "mnasnet_b1@0.5")
#: Families compared at matched latency: each at the width (published widths, or a grid where any
#: width is defined) whose measured latency is closest to the target.
MATCHED_FAMILIES = ("mobilenet_v1", "shufflenet_v2", "ghostnet", "squeezenet1_1",
                    "efficientnet_b0")
WIDTH_GRID = tuple(round(0.25 + 0.125 * i, 3) for i in range(11))  # 0.25 .. 1.5
HOLDOUT_FRACTION, HOLDOUT_SEED = 0.2, 0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_state(work: Path) -> dict[str, Any]:
    path = work / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def stage_data(work: Path, cifar: Path) -> Path:
    """Write the search split (never the held-out part) as an npz the search's `npz` data set
    reads; the held-out part is the validation split of `final_data_config`."""
    from mnas.training.data import DataConfig, read_arrays, stratified_split
    out = work / "search_data.npz"
    if out.exists():
        return out
    images, labels, _ = read_arrays(DataConfig(name="cifar10", path=str(cifar)))
    train_idx, _ = stratified_split(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
    tmp = work / "search_data.tmp.npz"
    np.savez(tmp, x=images[train_idx], y=labels[train_idx].astype(np.int64))
    os.replace(tmp, out)
    log(f"data: {len(train_idx)} search images -> {out} ({len(labels) - len(train_idx)} held out)")
    return out


@lru_cache(maxsize=1)
def headline_config() -> Any:
    from mnas.config.schema import load_config
    return load_config(CONFIG)


def headline_space() -> Any:
    return headline_config().space


def to_arch(blocks: list[str]) -> Any:
    """Block strings -> ArchSpec with the space's stem stride, head and dropout; a single
    reference name (a family outside the block grammar, e.g. `shufflenet_v2@0.5`) -> that
    network at stem stride 1."""
    from search_spaces import decode_arch, reference_network_names
    if len(blocks) == 1 and blocks[0].partition("@")[0] in reference_network_names():
        return reference(blocks[0])
    space = headline_space()
    return decode_arch(blocks, stem_stride=space.stem_stride, head_filters=space.head_filters,
                       dropout=space.dropout)


def reference(name: str) -> Any:
    """A baseline at 32x32: the reference network with stem stride 1, like the space."""
    from search_spaces import reference_network
    base, _, width = name.partition("@")
    return reference_network(base, float(width or 1.0), stem_stride=1)


def family_widths(name: str) -> tuple[float, ...]:
    from search_spaces import published_widths
    from search_spaces.families import FAMILIES
    fixed = name in FAMILIES and not FAMILIES[name].any_width
    return published_widths(name) if fixed else WIDTH_GRID


def stage_matched(state: dict[str, Any], work: Path, target_ms: float) -> list[str]:
    """Per family, the width whose measured latency (all candidates round-robin, 5 rounds) is
    closest to the target on a log scale; kept in state.json."""
    if "matched" in state:
        return list(state["matched"])
    from latency import make_profiler
    from latency.keys import arch_onnx
    from search_spaces import reference_label
    names = [reference_label(f, w) for f in MATCHED_FAMILIES for w in family_widths(f)]
    profiler = make_profiler({"rounds": 5, "runs": 30})
    ms = [m.ms for m in profiler.measure_many([arch_onnx(headline_space(), reference(n))
                                               for n in names])]
    picked = []
    for family in MATCHED_FAMILIES:
        mine = [(abs(np.log(t / target_ms)), n, t) for n, t in zip(names, ms)
                if n.partition("@")[0] == family]
        _, name, t = min(mine)
        picked.append(name)
        log(f"matched: {name} measures {t:.4f} ms (target {target_ms:.4f} ms)")
    state.update(matched=picked, matched_ms=dict(zip(names, ms)))
    atomic_write_json(work / "state.json", state)
    return picked


def stage_target(state: dict[str, Any], work: Path) -> float:
    if "target_ms" in state:
        return float(state["target_ms"])
    from latency import make_profiler
    from latency.keys import arch_onnx
    profiler = make_profiler({"rounds": 5, "runs": 50})
    m = profiler.measure(arch_onnx(headline_space(), reference("mobilenet_v2@0.5")))
    state.update(target_ms=m.ms, target_spread=m.spread)
    atomic_write_json(work / "state.json", state)
    log(f"target: MobileNetV2 x0.5 measures {m.ms:.4f} ms (spread {m.spread:.1%})")
    return m.ms


def search_dir(work: Path, method: str, seed: int) -> Path:
    return work / f"search-{method}-s{seed}"


def history(run_dir: Path) -> list[Any]:
    from mnas.search.history import load_history
    from mnas.search.rundir import RunDir

    return load_history(RunDir(run_dir).history)


def stage_search(work: Path, data: Path, target: float, methods: list[str], seeds: int,
                 children: int, extra: list[str]) -> None:
    from mnas.search.rundir import RunDir

    for seed in range(seeds):          # seed-major: an interruption leaves every method comparable
        for method in methods:
            run_dir = search_dir(work, method, seed)
            if len(history(run_dir)) >= children:
                continue
            cmd = [sys.executable, "-m", "mnas.cli", "search", str(CONFIG), "--run-dir",
                   str(run_dir), "--no-progress",
                   "--set", f"seed={seed}", "--set", f"controller.name={method}",
                   "--set", f"latency.target_ms={target!r}", "--set", f"budget.children={children}",
                   "--set", f"child_training.data.path={data}"]
            cmd += [arg for kv in extra for arg in ("--set", kv)]
            if RunDir(run_dir).config.exists():  # a started search: resume it
                cmd.append("--resume")
            log(f"search: {method} seed {seed} -> {run_dir}")
            start = time.time()
            if subprocess.run(cmd, cwd=REPO).returncode != 0:
                raise SystemExit(f"headline: the search {method} seed {seed} failed (its error is "
                                 f"above); rerun this command to resume")
            log(f"search: {method} seed {seed} done in {time.time() - start:.0f} s")


def best_of(run_dir: Path) -> Any:
    from mnas.search.ranking import best, candidates

    return best(candidates(history(run_dir)))


def final_models(work: Path, methods: list[str], seeds: int,
                 matched: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Name, kind and block strings (a family's reference name) of every model in the final
    comparison: the baselines, the families at matched latency, the best of every search."""
    from search_spaces import network_strings
    models: list[dict[str, Any]] = [
        {"name": b, "kind": "baseline", "blocks": network_strings(reference(b))}
              for b in BASELINES + tuple(m for m in matched if m not in BASELINES)]
    for method in methods:
        for seed in range(seeds):
            best = best_of(search_dir(work, method, seed))
            models.append({"name": f"{method}-s{seed}", "kind": "searched", "method": method,
                           "search_seed": seed, "blocks": list(best.arch),
                           "search_reward": best.reward, "proxy_accuracy": best.accuracy,
                           "predicted_ms": best.latency_ms})
    return models


def final_data_config(cifar: Path, max_train: int) -> Any:
    from mnas.training.data import DataConfig
    return DataConfig(name="cifar10", path=str(cifar), input_size=32,
                      val_fraction=HOLDOUT_FRACTION, split_seed=HOLDOUT_SEED,
                      max_train=max_train, max_val=None)


def train_final(job: dict[str, Any]) -> dict[str, Any]:
    """One (model, training seed): the fixed final recipe, accuracy on the held-out 20%."""
    from mnas.training.trainer import TrainConfig, train_child
    arch = to_arch(job["blocks"])
    cfg = TrainConfig(data=final_data_config(Path(job["cifar"]), job["max_train"]),
                      epochs=job["epochs"], batch_size=64, lr=0.05, augment=True,
                      seed=job["seed"], threads=1)
    result = train_child(arch, cfg, num_classes=10)
    return {"name": job["name"], "seed": job["seed"], **result.to_dict()}


def stage_final(work: Path, models: list[dict[str, Any]], cifar: Path, epochs: float,
                max_train: int, workers: int) -> list[dict[str, Any]]:
    path = work / "final.jsonl"
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    have = {(r["name"], r["seed"]) for r in done}
    jobs = [{"name": m["name"], "blocks": m["blocks"], "seed": s, "epochs": epochs,
             "max_train": max_train, "cifar": str(cifar)}
            for s in (0, 1) for m in models if (m["name"], s) not in have]
    log(f"final: {len(jobs)} trainings to go ({len(have)} done), {workers} at a time")
    with ProcessPoolExecutor(workers) as pool, path.open("a") as out:
        for i, row in enumerate(pool.map(train_final, jobs)):
            out.write(json.dumps(row) + "\n")
            out.flush()
            os.fsync(out.fileno())
            done.append(row)
            log(f"final {i + 1}/{len(jobs)}: {row['name']} seed {row['seed']}: "
                f"{row['accuracy']:.4f} in {row['wall_time_s']:.0f} s ({row['status']})")
    return done


def stage_latency(state: dict[str, Any], work: Path, models: list[dict[str, Any]],
                  rounds: int) -> dict[str, Any]:
    """Every final model measured end to end, the models interleaved within each round so that
    drift of the shared machine hits all of them alike; lut predictions beside them."""
    from latency import create_predictor, make_profiler
    from latency.keys import arch_onnx
    measured: dict[str, Any] = state.setdefault("measured", {})
    todo = [m for m in models if m["name"] not in measured]
    if not todo:
        return measured
    space = headline_space()
    try:
        table = str(REPO / headline_config().latency.table)
        lut = create_predictor("lut", space=space, table=table)
    except (ValueError, OSError):
        lut = None                      # no table (a smoke run with another predictor)
    profiler = make_profiler({"rounds": 1, "runs": 50})
    graphs = {m["name"]: arch_onnx(space, to_arch(m["blocks"])) for m in todo}
    per_round: dict[str, list[float]] = {m["name"]: [] for m in todo}
    for r in range(rounds):
        for m in todo:
            per_round[m["name"]].append(profiler.measure(graphs[m["name"]]).ms)
        log(f"latency: round {r + 1}/{rounds}")
    for m in todo:
        ms = np.array(per_round[m["name"]])
        try:
            net = to_arch(m["blocks"])
            grammar = not hasattr(net, "family")  # a family outside the grammar has no table
            predicted = float(lut.predict(net)) if lut is not None and grammar else None
        except ValueError:
            predicted = None            # a layer outside the space's table (some baselines)
        measured[m["name"]] = {"ms": float(np.median(ms)), "cv": float(ms.std() / ms.mean()),
                               "rounds_ms": ms.tolist(), "lut_ms": predicted}
    atomic_write_json(work / "state.json", state)
    return measured


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "runs" / "headline")
    p.add_argument("--cifar", type=Path, default=SHARED_CIFAR)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", type=int, default=3, help="search seeds per method")
    p.add_argument("--children", type=int, default=24, help="children per search")
    p.add_argument("--final-epochs", type=float, default=3.0)
    p.add_argument("--final-train", type=int, default=10000, help="final training images")
    p.add_argument("--latency-rounds", type=int, default=7)
    p.add_argument("--workers", type=int, default=2, help="final trainings in parallel")
    p.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra `mnas search --set` for every search (e.g. a smaller smoke run)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "headline.json")
    args = p.parse_args(argv)
    if not args.cifar.exists():
        print(f"headline: {args.cifar}: CIFAR-10 not found (see ../shared/data/README.md)",
              file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    state = load_state(args.work)
    data = stage_data(args.work, args.cifar)
    target = stage_target(state, args.work)
    matched = stage_matched(state, args.work, target)
    stage_search(args.work, data, target, args.methods, args.seeds, args.children, args.search_set)
    models = final_models(args.work, args.methods, args.seeds, tuple(matched))
    final = stage_final(args.work, models, args.cifar, args.final_epochs, args.final_train,
                        args.workers)
    measured = stage_latency(state, args.work, models, args.latency_rounds)
    state["wall_s"] = state.get("wall_s", 0.0) + time.time() - started
    atomic_write_json(args.work / "state.json", state)
    from headline_report import report
    report(args, state, models, final, measured,
           {m: [history(search_dir(args.work, m, s)) for s in range(args.seeds)]
            for m in args.methods})
    return 0


if __name__ == "__main__":
    sys.exit(main())
