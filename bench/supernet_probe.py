"""Why a supernet ranks children badly: score the sandwich rule's smallest and largest children
(trained at every step) and every child one decision away from them, with inherited weights.

When a single change (one block's op, one more layer) drops accuracy from the trained extreme to
near chance, the weights in between were not trained for that context: the supernet scores
co-adaptation, not architecture quality.

    python bench/supernet_probe.py --config experiments/headline_cifar10.yaml \\
        --set child_training.data.path=runs/headline/search_data.npz \\
        --out bench/results/supernet_probe_cifar10.json
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnas.config.schema import load_config
from mnas.fileio import atomic_write_json
from mnas.supernet.config import checkpoint_path
from mnas.supernet.evaluation import load_scorer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/headline_cifar10.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--recal", type=int, default=8)
    p.add_argument("--val-images", type=int, default=500)
    p.add_argument("--random", type=int, default=10, help="random children scored beside")
    p.add_argument("--out", type=Path, default=Path("bench/results/supernet_probe.json"))
    args = p.parse_args(argv)
    config = load_config(args.config, args.set)
    space = config.space
    sn = replace(config.supernet, recalibration_batches=args.recal, val_images=args.val_images)
    scorer = load_scorer(checkpoint_path(config), space, config.child_training, sn)
    result: dict[str, Any] = dict(config=args.config, overrides=args.set, recal=args.recal,
                                  val_images=args.val_images, extremes={})
    for name in ("smallest", "largest"):
        base = scorer.supernet.extreme_actions(name == "largest")
        rows = []
        for i, decision in enumerate(space.decisions):
            for c in range(decision.size):
                if c != base[i]:
                    actions = list(base)
                    actions[i] = c
                    rows.append(dict(decision=decision.name, choice=str(decision.choices[c]),
                                     accuracy=scorer.score(space.decode(actions)).accuracy))
        accs = [r["accuracy"] for r in rows]
        result["extremes"][name] = dict(accuracy=scorer.score(space.decode(base)).accuracy,
                                        one_change=rows, one_change_median=float(np.median(accs)))
        print(f"{name}: {result['extremes'][name]['accuracy']:.3f}; one decision changed: "
              f"median {np.median(accs):.3f}, range {min(accs):.3f}-{max(accs):.3f} "
              f"({len(rows)} children)", flush=True)
    rng = np.random.default_rng(0)
    result["random"] = [scorer.score(space.sample(rng)).accuracy for _ in range(args.random)]
    print(f"random children: median {np.median(result['random']):.3f}, "
          f"max {max(result['random']):.3f}")
    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
