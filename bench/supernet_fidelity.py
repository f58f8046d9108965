"""Rank fidelity of supernet scoring: Kendall tau between each child's accuracy with inherited
supernet weights and its accuracy trained stand-alone, for random children of a config's space.

The stand-alone recipe is the config's `child_training` (with `--standalone-set` overrides), run
with two seeds: the tau between the two seeds is the ceiling any proxy can reach. Supernet variants
(kernel transform, sandwich rule, epochs) are each trained once (`--variants`), or taken from
checkpoints already trained (`--checkpoints LABEL=PATH`, e.g. the snapshots of one run after each
epoch), and score the same children with several BN-recalibration sizes and fine-tuning steps.
Every finished training is saved into the result JSON at once, so a rerun with the same flags
continues where an interrupted one stopped.

    python bench/supernet_fidelity.py --config experiments/quickstart.yaml --archs 30 \\
        --variants crop:sandwich:20 crop:single:20 ofa:sandwich:20 --recal 2 8 32 \\
        --out bench/results/supernet_fidelity_quickstart.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnas.config.schema import ExperimentConfig, load_config
from mnas.fileio import atomic_write_json
from mnas.supernet.config import SupernetConfig
from mnas.supernet.evaluation import load_scorer
from mnas.supernet.training import train_supernet
from mnas.training.trainer import train_child
from search_spaces.specs import ArchSpec

#: The supernet's kernel transforms (`SupernetConfig.kernel_transform`).
Transform = Literal["crop", "ofa"]


def _save(out: Path, state: dict[str, Any]) -> None:
    atomic_write_json(out, state, indent=1)


@dataclass(frozen=True)
class Grid:
    """The scoring settings tried on every supernet (0 validation images = all of them)."""

    recal: list[int]
    val_images: list[int]
    finetune: list[int]


def _train_one(job: tuple[ArchSpec, Any, int, int]) -> tuple[int, float, float]:
    arch, child_training, classes, i = job
    t = time.perf_counter()
    result = train_child(arch, child_training, num_classes=classes)
    return i, result.accuracy, time.perf_counter() - t


def _standalone(state: dict[str, Any], out: Path, config: ExperimentConfig, archs: list[ArchSpec],
                seeds: list[int], jobs: int) -> None:
    """Every child trained with the stand-alone recipe per seed; `jobs` trainings side by side
    (one thread each), each saved as it finishes (`standalone[seed][index]`)."""
    runs = state.setdefault("standalone", {})
    todo = [(archs[i], replace(config.child_training, seed=seed), config.space.num_classes, i, seed)
            for seed in seeds for i in range(len(archs))
            if str(i) not in runs.setdefault(str(seed), {})]
    with ProcessPoolExecutor(jobs) as pool:
        futures = {pool.submit(_train_one, job[:4]): job[4] for job in todo}
        for n, future in enumerate(as_completed(futures)):
            i, acc, seconds = future.result()
            runs[str(futures[future])][str(i)] = acc
            print(f"stand-alone {n + 1}/{len(todo)}: seed {futures[future]} child {i}: "
                  f"{acc:.4f} ({seconds:.0f} s)", flush=True)
            _save(out, state)


def _accs(state: dict[str, Any], seed: str, n: int) -> list[float]:
    return [state["standalone"][seed][str(i)] for i in range(n)]


def _score_grid(entry: dict[str, Any], out: Path, state: dict[str, Any], ckpt: Path,
                config: ExperimentConfig, sn: SupernetConfig, archs: list[ArchSpec],
                grid: Grid) -> None:
    """Scores of every child per (BN recalibration batches, validation images, fine-tuning
    steps), kept in `entry["scores"]` under `recal{n}_val{v}[_ft{k}]`, seconds per child beside."""
    scores, seconds = entry.setdefault("scores", {}), entry.setdefault("s_per_child", {})
    for k in grid.finetune:
        for v in grid.val_images:
            for n in grid.recal:
                key = f"recal{n}_val{v or 'all'}" + (f"_ft{k}" if k else "")
                if key in scores:
                    continue
                scorer = load_scorer(ckpt, config.space, config.child_training,
                                     replace(sn, recalibration_batches=n, finetune_steps=k,
                                             val_images=v or None))
                t = time.perf_counter()
                scores[key] = [scorer.score(a).accuracy for a in archs]
                seconds[key] = round((time.perf_counter() - t) / len(archs), 3)
                print(f"{ckpt.name} {key}: {seconds[key]} s/child", flush=True)
                _save(out, state)


def _variant(state: dict[str, Any], out: Path, config: ExperimentConfig, archs: list[ArchSpec],
             spec: str, grid: Grid, work: Path) -> None:
    transform, mode, epochs = spec.split(":")
    if transform not in ("crop", "ofa"):
        raise SystemExit(f"--variants: {spec!r}: the kernel transform is crop or ofa")
    sn = replace(config.supernet, epochs=float(epochs), kernel_transform=cast(Transform, transform),
                 sandwich=mode == "sandwich", checkpoint=None)
    entry = state.setdefault("variants", {}).setdefault(spec, {})
    ckpt = work / f"{spec.replace(':', '_')}.pt"
    if "train_s" not in entry:
        t = time.perf_counter()
        train_supernet(config.space, config.child_training, sn, ckpt, progress=True)
        entry["train_s"] = round(time.perf_counter() - t, 1)
        _save(out, state)
    _score_grid(entry, out, state, ckpt, config, sn, archs, grid)


def _checkpoint(state: dict[str, Any], out: Path, config: ExperimentConfig,
                archs: list[ArchSpec], label_path: str, grid: Grid) -> None:
    label, sep, path = label_path.partition("=")
    if not sep:
        raise SystemExit(f"--checkpoints: {label_path!r}: expected LABEL=PATH")
    entry = state.setdefault("variants", {}).setdefault(label, {"checkpoint": path})
    _score_grid(entry, out, state, Path(path), config, config.supernet, archs, grid)


def _summary(state: dict[str, Any]) -> list[dict[str, Any]]:
    n = len(state["archs"])
    seeds = sorted(state["standalone"])
    runs = [np.array(_accs(state, s, n)) for s in seeds]
    truth = np.mean(runs, axis=0)
    rows = [dict(variant="stand-alone seed vs seed (ceiling)", score=None,
                 tau=float(kendalltau(runs[0], runs[1])[0]) if len(runs) > 1 else None)]
    for spec, entry in state.get("variants", {}).items():
        for key, value in entry.get("scores", {}).items():
            rows.append(dict(variant=spec, score=key, tau=float(kendalltau(value, truth)[0]),
                             s_per_child=entry["s_per_child"].get(key),
                             train_s=entry.get("train_s")))
    return rows


def _plot(state: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(state["archs"])
    truth = np.mean([_accs(state, s, n) for s in state["standalone"]], axis=0)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for spec, entry in state.get("variants", {}).items():
        scores = entry.get("scores", {})
        if scores:
            best = max(scores, key=lambda k: kendalltau(scores[k], truth)[0])
            tau = kendalltau(scores[best], truth)[0]
            ax.scatter(truth, scores[best], s=14, label=f"{spec} {best} (tau {tau:.2f})")
    ax.set_xlabel("stand-alone accuracy (mean of seeds)")
    ax.set_ylabel("supernet accuracy (inherited weights)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/quickstart.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for everything (repeatable)")
    p.add_argument("--standalone-set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the stand-alone recipe only (repeatable)")
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--jobs", type=int, default=1, help="stand-alone trainings side by side")
    p.add_argument("--variants", nargs="*", default=["crop:sandwich:20"],
                   help="supernets to train: kernel transform:sandwich|single:epochs")
    p.add_argument("--checkpoints", nargs="*", default=[], metavar="LABEL=PATH",
                   help="supernets already trained (the config's space) to score with")
    p.add_argument("--recal", type=int, nargs="+", default=[8])
    p.add_argument("--val-images", type=int, nargs="+", default=[2000],
                   help="validation images per score (0 = all)")
    p.add_argument("--finetune", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/supernet_fidelity.json"))
    p.add_argument("--work", type=Path, default=Path("runs/bench/supernet"))
    args = p.parse_args(argv)
    config = load_config(args.config, args.set)
    standalone = load_config(args.config, args.set + args.standalone_set)
    rng = np.random.default_rng(12345)
    archs = [config.space.sample(rng) for _ in range(args.archs)]
    state = json.loads(args.out.read_text()) if args.out.exists() else {}
    recipe = standalone.child_training.to_dict()
    if state.get("standalone_recipe", recipe) != recipe:
        raise SystemExit(f"{args.out}: its stand-alone runs used another recipe; pass another "
                         "--out to measure this one")
    state.update(config=args.config, overrides=args.set, standalone_overrides=args.standalone_set,
                 standalone_recipe=recipe,
                 archs=[config.space.to_strings(a) for a in archs])
    args.work.mkdir(parents=True, exist_ok=True)
    _standalone(state, args.out, standalone, archs, args.seeds, args.jobs)
    grid = Grid(args.recal, args.val_images, args.finetune)
    for spec in args.variants:
        _variant(state, args.out, config, archs, spec, grid, args.work)
    for label_path in args.checkpoints:
        _checkpoint(state, args.out, config, archs, label_path, grid)
    state["summary"] = _summary(state)
    _save(args.out, state)
    _plot(state, args.out.with_suffix(".png"))
    print(f"{'supernet':<30} {'scoring':>20} {'tau':>6} {'s/child':>8} {'train s':>8}")
    for row in state["summary"]:
        tau = "-" if row["tau"] is None else f"{row['tau']:.3f}"
        print(f"{row['variant']:<30} {row['score'] or '-':>20} {tau:>6} "
              f"{row.get('s_per_child') or '-':>8} {row.get('train_s') or '-':>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
