"""Rank fidelity of supernet scoring: Kendall tau between each child's accuracy with inherited
supernet weights and its accuracy trained stand-alone, for random children of a config's space.

The stand-alone recipe is the config's `child_training`, run with two seeds: the tau between the
two seeds is the ceiling any proxy can reach. Supernet variants (kernel transform, sandwich rule,
epochs) are each trained once and score the same children with several BN-recalibration sizes.
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
from dataclasses import replace
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


def _standalone(state: dict[str, Any], out: Path, config: ExperimentConfig, archs: list[ArchSpec],
                seeds: list[int]) -> None:
    runs = state.setdefault("standalone", {})
    for seed in seeds:
        accs = runs.setdefault(str(seed), [])
        for i in range(len(accs), len(archs)):
            t = time.perf_counter()
            result = train_child(archs[i], replace(config.child_training, seed=seed),
                                 num_classes=config.space.num_classes)
            accs.append(result.accuracy)
            print(f"stand-alone seed {seed} child {i + 1}/{len(archs)}: {result.accuracy:.4f} "
                  f"({time.perf_counter() - t:.1f} s)", flush=True)
            _save(out, state)


def _variant(state: dict[str, Any], out: Path, config: ExperimentConfig, archs: list[ArchSpec],
             spec: str, recal: list[int], work: Path) -> None:
    transform, mode, epochs = spec.split(":")
    if transform not in ("crop", "ofa"):
        raise SystemExit(f"--variants: {spec!r}: the kernel transform is crop or ofa")
    sn = SupernetConfig(epochs=float(epochs), kernel_transform=cast(Transform, transform),
                        sandwich=mode == "sandwich", val_images=None)
    entry = state.setdefault("variants", {}).setdefault(spec, {})
    ckpt = work / f"{spec.replace(':', '_')}.pt"
    if "train_s" not in entry:
        t = time.perf_counter()
        train_supernet(config.space, config.child_training, sn, ckpt, progress=True)
        entry["train_s"] = round(time.perf_counter() - t, 1)
        _save(out, state)
    for n in recal:
        key = f"recal{n}"
        if key in entry:
            continue
        scorer = load_scorer(ckpt, config.space, config.child_training,
                             replace(sn, recalibration_batches=n))
        t = time.perf_counter()
        entry[key] = [scorer.score(a).accuracy for a in archs]
        entry[f"{key}_s_per_child"] = round((time.perf_counter() - t) / len(archs), 3)
        print(f"{spec} recal {n}: {entry[f'{key}_s_per_child']} s/child", flush=True)
        _save(out, state)


def _summary(state: dict[str, Any]) -> list[dict[str, Any]]:
    seeds = sorted(state["standalone"])
    runs = [np.array(state["standalone"][s]) for s in seeds]
    truth = np.mean(runs, axis=0)
    rows = [dict(variant="stand-alone seed vs seed (ceiling)", recal=None,
                 tau=float(kendalltau(runs[0], runs[1])[0]) if len(runs) > 1 else None)]
    for spec, entry in state.get("variants", {}).items():
        for key, value in entry.items():
            if key.startswith("recal") and not key.endswith("s_per_child"):
                rows.append(dict(variant=spec, recal=int(key[5:]),
                                 tau=float(kendalltau(value, truth)[0]),
                                 s_per_child=entry.get(f"{key}_s_per_child"),
                                 train_s=entry.get("train_s")))
    return rows


def _plot(state: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = np.mean([state["standalone"][s] for s in state["standalone"]], axis=0)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for spec, entry in state.get("variants", {}).items():
        keys = [k for k in entry if k.startswith("recal") and not k.endswith("s_per_child")]
        if keys:
            best = max(keys, key=lambda k: kendalltau(entry[k], truth)[0])
            tau = kendalltau(entry[best], truth)[0]
            ax.scatter(truth, entry[best], s=14, label=f"{spec} {best} (tau {tau:.2f})")
    ax.set_xlabel("stand-alone accuracy (mean of seeds)")
    ax.set_ylabel("supernet accuracy (inherited weights)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/quickstart.yaml")
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--variants", nargs="+", default=["crop:sandwich:20"],
                   help="kernel transform:sandwich|single:epochs")
    p.add_argument("--recal", type=int, nargs="+", default=[8])
    p.add_argument("--out", type=Path, default=Path("bench/results/supernet_fidelity.json"))
    p.add_argument("--work", type=Path, default=Path("runs/bench/supernet"))
    args = p.parse_args(argv)
    config = load_config(args.config)
    rng = np.random.default_rng(12345)
    archs = [config.space.sample(rng) for _ in range(args.archs)]
    state = json.loads(args.out.read_text()) if args.out.exists() else {}
    state.update(config=args.config, archs=[config.space.to_strings(a) for a in archs])
    args.work.mkdir(parents=True, exist_ok=True)
    _standalone(state, args.out, config, archs, args.seeds)
    for spec in args.variants:
        _variant(state, args.out, config, archs, spec, args.recal, args.work)
    state["summary"] = _summary(state)
    _save(args.out, state)
    _plot(state, args.out.with_suffix(".png"))
    print(f"{'variant':<40} {'recal':>5} {'tau':>6} {'s/child':>8} {'train s':>8}")
    for row in state["summary"]:
        tau = "-" if row["tau"] is None else f"{row['tau']:.3f}"
        print(f"{row['variant']:<40} {row['recal'] or '-':>5} {tau:>6} "
              f"{row.get('s_per_child') or '-':>8} {row.get('train_s') or '-':>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
