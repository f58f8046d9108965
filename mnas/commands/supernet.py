"""`mnas supernet train`: train the one-shot supernet of an experiment's search space.

`evaluator: supernet` searches then score children with its weights. The run checkpoints every
epoch (atomically) and continues from the checkpoint when run again (after Ctrl-C or a kill).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mnas.commands import Subparsers


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("supernet", help="weight sharing: train the search space's supernet")
    sub = p.add_subparsers(dest="supernet_command", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="train (or continue training) the supernet",
                       description="Train one network that contains every child of the config's "
                                   "search space (uniform single-path sampling, optionally the "
                                   "sandwich rule), with child_training's optimiser, schedule, "
                                   "augmentation and data. Run again to continue it.")
    t.add_argument("config", help="experiment YAML (its search_space, child_training and "
                                  "supernet sections)")
    t.add_argument("--out", type=Path, default=None,
                   help="checkpoint path (default: supernet.checkpoint, else "
                        "<output.dir>/supernet/<name>.pt)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set supernet.epochs=40 (repeatable)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from mnas.config.schema import load_config
    from mnas.supernet.config import checkpoint_path
    from mnas.supernet.training import train_supernet

    from search_spaces.space import MnasNetSpace

    config = load_config(args.config, args.overrides)
    if not isinstance(config.space, MnasNetSpace):
        raise ValueError(f"{args.config}: search_space.name: the supernet covers the mnasnet "
                         "space only")
    out = args.out or checkpoint_path(config)
    if out.exists() and out.is_dir():
        raise ValueError(f"--out {out}: is a directory (expected a checkpoint file path)")
    meta = train_supernet(config.space, config.child_training, config.supernet, out,
                          progress=not args.quiet)
    last = meta["history"][-1] if meta["history"] else {}
    loss = last.get("loss", float("nan"))
    print(f"supernet: {last.get('epoch', 0):g} epochs, last loss {loss:.4f} -> {out}")
    return 0
