"""The headline benchmark: does the search beat width-scaled MobileNetV2 and random search here?

Every child is scored by a weight-sharing supernet trained once on the search split. Stages, each
resumable (state under --work, default runs/headline; rerun the same command after an
interruption: finished stages are skipped and a stage in progress loses only its unfinished part):

  data      the search split of the shared CIFAR-10 (80% of the training split, stratified, seed 0)
            is written to <work>/search_data.npz; the other 20% is held out for the final
            comparison only. --carve-extra F moves a stratified fraction F of the held-out images
            into <work>/extra.npz (an extra test set no choice ever sees).
  target    T = MobileNetV2 x0.5's latency measured end to end (onnxruntime, 1 thread, batch 1).
  matched   (only with --families) per lightweight family (MobileNetV1, ShuffleNetV2, GhostNet,
            SqueezeNet, EfficientNet-B0), the width whose measured latency is closest to T.
  supernet  `mnas supernet train experiments/headline_cifar10.yaml` on the search split into
            <work>/supernet.pt (the CLI resumes an interrupted run from its per-epoch checkpoint).
  search    `mnas search` per method and seed with the soft reward, and for the first
            --hard-seeds seeds also with the hard reward (own run dirs,
            `search-<method>-hard-s<seed>`), seed-major, every child scored with the supernet's
            weights; resumed if interrupted.
  final     the baselines (MobileNetV2 x0.35/0.5/0.75/1.0, MnasNet-A1/B1 x0.5), the matched
            families if any and the best (by reward) of every search, each trained from scratch
            with one recipe on the whole search split, 2 training seeds; top-1 on the held-out
            images and on the extra set; each saved as <work>/final/<name>-s<seed>/model.onnx
            (the deployment export `mnas train` writes) and weights.pt (the state_dict).
  latency   every final model measured end to end, interleaved over rounds (median, spread).
  report    bench/results/headline.json, .png and a printed table (bench/headline_report.py).

state.json keeps each stage's results and its wall time (`stage_s`); final.jsonl one line per
finished training.

  .venv/bin/python bench/headline.py [--seeds 3] [--children 1000] [--carve-extra 0.5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mnas.fileio import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from headline_models import (CONFIG, HOLDOUT_FRACTION, HOLDOUT_SEED, carve_split,
                             final_models, headline_config, headline_space, history, log,
                             read_extra, reference, search_dir, search_name, searches,
                             stage_final, to_arch)

SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg-train.npz"
METHODS = ("rnn", "constrained_random", "random", "evolution")
#: Families compared at matched latency (--families): each at the width (published widths, or a
#: grid where any width is defined) whose measured latency is closest to the target.
MATCHED_FAMILIES = ("mobilenet_v1", "shufflenet_v2", "ghostnet", "squeezenet1_1",
                    "efficientnet_b0")
WIDTH_GRID = tuple(round(0.25 + 0.125 * i, 3) for i in range(11))  # 0.25 .. 1.5


def load_state(work: Path) -> dict[str, Any]:
    path = work / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


@contextmanager
def timed(state: dict[str, Any], work: Path, stage: str) -> Iterator[None]:
    """Add the stage's wall time to state.json's `stage_s` (also when interrupted)."""
    start = time.time()
    try:
        yield
    finally:
        times = state.setdefault("stage_s", {})
        times[stage] = round(times.get(stage, 0.0) + time.time() - start, 1)
        atomic_write_json(work / "state.json", state)


def repo_path(path: Path) -> str:
    """Relative to the repository (the subprocesses' cwd) when inside it: the supernet checkpoint
    remembers its data path, and a resume must name it the same way."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def stage_data(state: dict[str, Any], work: Path, cifar: Path, carve: float) -> Path:
    """Write the search split (never the held-out part) as an npz the search's `npz` data set
    reads, and with `carve` the extra set; the held-out part is the validation split of
    `final_data_config`."""
    from mnas.training.data import DataConfig, read_arrays, stratified_split
    out, extra = work / "search_data.npz", work / "extra.npz"
    if out.exists() and (not carve or extra.exists()):
        return out
    images, labels, _ = read_arrays(DataConfig(name="cifar10", path=str(cifar)))
    train_idx, held_idx = stratified_split(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
    parts = [(out, train_idx)]
    if carve:
        parts.append((extra, held_idx[carve_split(labels[held_idx], carve)[1]]))
    for path, idx in parts:
        if not path.exists():
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, x=images[idx], y=labels[idx].astype(np.int64))
            os.replace(tmp, path)
            log(f"data: {len(idx)} images -> {path}")
    state["carve_extra"] = carve
    atomic_write_json(work / "state.json", state)
    return out


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


def run(cmd: list[str], what: str) -> None:
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        raise SystemExit(f"headline: {what} failed (its error is above); rerun this command to "
                         "resume")


def stage_supernet(state: dict[str, Any], work: Path, data: Path, ckpt: Path,
                   extra: list[str]) -> None:
    """Train (or continue) the supernet; skipped once this exact command has finished."""
    cmd = [sys.executable, "-m", "mnas.cli", "supernet", "train", repo_path(CONFIG), "--quiet",
           "--set", f"child_training.data.path={repo_path(data)}",
           "--set", f"supernet.checkpoint={repo_path(ckpt)}", "--set", "child_training.threads=2"]
    cmd += [arg for kv in extra for arg in ("--set", kv)]
    if state.get("supernet_done") == cmd[3:] and ckpt.exists():
        return
    log(f"supernet: training -> {ckpt} (resumes from its checkpoint)")
    run(cmd, "the supernet training")
    state["supernet_done"] = cmd[3:]
    atomic_write_json(work / "state.json", state)


def stage_search(state: dict[str, Any], work: Path, data: Path, ckpt: Path, target: float,
                 runs: list[tuple[str, int, str]], children: int, extra: list[str]) -> None:
    """Every search in `runs` to `children` children; each one's wall time (summed over resumes)
    in state.json's `search_s`, for the children-per-hour figure."""
    from mnas.search.rundir import RunDir

    spent = state.setdefault("search_s", {})
    for method, seed, preset in runs:
        run_dir, name = search_dir(work, method, seed, preset), search_name(method, seed, preset)
        if len(history(run_dir)) >= children:
            continue
        cmd = [sys.executable, "-m", "mnas.cli", "search", repo_path(CONFIG), "--run-dir",
               str(run_dir), "--no-progress",
               "--set", f"seed={seed}", "--set", f"controller.name={method}",
               "--set", f"reward.preset={preset}",
               "--set", f"latency.target_ms={target!r}", "--set", f"budget.children={children}",
               "--set", f"child_training.data.path={repo_path(data)}",
               "--set", f"supernet.checkpoint={repo_path(ckpt)}"]
        cmd += [arg for kv in extra for arg in ("--set", kv)]
        if RunDir(run_dir).config.exists():  # a started search: resume it
            cmd.append("--resume")
        log(f"search: {name} -> {run_dir}")
        start = time.time()
        try:
            run(cmd, f"the search {name}")
        finally:
            spent[name] = round(spent.get(name, 0.0) + time.time() - start, 1)
            atomic_write_json(work / "state.json", state)
        log(f"search: {name} done in {time.time() - start:.0f} s")


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "runs" / "headline")
    p.add_argument("--cifar", type=Path, default=SHARED_CIFAR)
    p.add_argument("--methods", nargs="+", default=["rnn", "constrained_random"], choices=METHODS)
    p.add_argument("--seeds", type=int, default=3, help="search seeds per method (soft reward)")
    p.add_argument("--hard-seeds", type=int, default=1,
                   help="the first N seeds of each method also search with the hard reward")
    p.add_argument("--children", type=int, default=1000, help="children per search")
    p.add_argument("--families", action="store_true",
                   help="also compare lightweight families at matched latency (MobileNetV1, "
                        "ShuffleNetV2, GhostNet, SqueezeNet, EfficientNet-B0)")
    p.add_argument("--final-epochs", type=float, default=2.0)
    p.add_argument("--final-train", type=int, default=40000,
                   help="final training images (40,000 = the whole search split)")
    p.add_argument("--latency-rounds", type=int, default=7)
    p.add_argument("--workers", type=int, default=2, help="final trainings in parallel")
    p.add_argument("--extra", type=Path, default=None, metavar="NPZ",
                   help="a real extra labelled test set (x/y npz or the CIFAR-10 JPEG npz, "
                        "32x32 RGB, CIFAR-10 classes) that no choice sees: every final model is "
                        "also scored on it")
    p.add_argument("--carve-extra", type=float, default=0.0, metavar="F",
                   help="without a real extra set: move a stratified fraction F of the held-out "
                        "images into <work>/extra.npz and score on both halves (e.g. 0.5)")
    p.add_argument("--supernet-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra `mnas supernet train --set` (e.g. supernet.epochs=0.01 to smoke)")
    p.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra `mnas search --set` for every search (e.g. a smaller smoke run)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "headline.json")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> str | None:
    """One line naming what is wrong with the inputs (None if they are usable)."""
    if not args.cifar.exists():
        return f"{args.cifar}: CIFAR-10 not found (see ../shared/data/README.md)"
    if not 0 <= args.carve_extra < 1:
        return f"--carve-extra {args.carve_extra}: expected a fraction in [0, 1)"
    if args.extra is not None and args.carve_extra:
        return "--extra and --carve-extra: give one extra set, not both"
    if not 0 <= args.hard_seeds <= args.seeds:
        return f"--hard-seeds {args.hard_seeds}: expected 0..--seeds ({args.seeds})"
    if args.extra is not None:
        try:
            images, _ = read_extra(args.extra)
        except (ValueError, OSError) as exc:
            return str(exc)
        if images.ndim != 4 or images.shape[3] != 3:
            return f"{args.extra}: expected RGB images (NxHxWx3), got shape {images.shape}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"headline: {problem}", file=sys.stderr)
        return 2
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    state = load_state(work)
    if state.get("carve_extra", args.carve_extra) != args.carve_extra:
        print(f"headline: --carve-extra {args.carve_extra}: {work} was prepared with "
              f"{state['carve_extra']} (use that, or another --work)", file=sys.stderr)
        return 2
    data = stage_data(state, work, args.cifar, args.carve_extra)
    extra = work / "extra.npz" if args.carve_extra else args.extra
    target = stage_target(state, work)
    matched = stage_matched(state, work, target) if args.families else []
    ckpt = work / "supernet.pt"
    with timed(state, work, "supernet"):
        stage_supernet(state, work, data, ckpt, args.supernet_set)
    runs = list(searches(args.methods, args.seeds, args.hard_seeds))
    with timed(state, work, "search"):
        stage_search(state, work, data, ckpt, target, runs, args.children, args.search_set)
    models = final_models(work, runs, tuple(matched))
    with timed(state, work, "final"):
        final = stage_final(work, models, args.cifar, args.final_epochs, args.final_train,
                            args.workers, args.carve_extra, extra)
    with timed(state, work, "latency"):
        measured = stage_latency(state, work, models, args.latency_rounds)
    state["wall_s"] = state.get("wall_s", 0.0) + time.time() - started
    atomic_write_json(work / "state.json", state)
    from headline_report import report
    rewards = {search_name(m, s, p): [r.reward for r in history(search_dir(work, m, s, p))]
               for m, s, p in runs}
    report(args, state, models, final, measured, runs, rewards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
