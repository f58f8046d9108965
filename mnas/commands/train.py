"""`mnas train`: train a found architecture to convergence, then export it.

Uses the experiment config's `child_training` section (the same TrainConfig the search used, with
`--epochs` for the longer run) and the search space's stem stride; the training itself is
`mnas.training.full.train_full` (what it writes in DIR is described there).
"""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mnas.config.experiments import experiment_path

if TYPE_CHECKING:
    from mnas.commands import Subparsers
    from mnas.training.trainer import TrainConfig


def _load_configs(path: str, stem_stride: int | None,
                  progress: bool = True) -> tuple[TrainConfig, int | None]:
    """The `child_training` section as a TrainConfig and the stem stride the config's search
    space names (None when it names none)."""
    from mnas.config.safe_yaml import safe_load
    from mnas.config.schema import load_config
    from mnas.search.runner import check_inputs
    config = load_config(path)
    try:
        check_inputs(config, progress=progress)  # before DIR is created: a typo leaves nothing
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    raw = safe_load(Path(path).read_text(encoding="utf-8")) or {}  # load_config read it: valid
    space = raw.get("search_space") if isinstance(raw, dict) else None
    if stem_stride is None and isinstance(space, dict) and "stem_stride" in space:
        stem_stride = config.space.stem_stride
    return config.child_training, stem_stride


def _run(args: argparse.Namespace) -> int:
    from mnas.architectures import resolve_arch
    from mnas.training.full import train_full

    is_export = len(args.arch) == 1 and args.arch[0].endswith(".json")
    config, stem_stride = _load_configs(args.config, args.stem_stride, progress=not args.quiet)
    if is_export and args.stem_stride is None:
        stem_stride = None  # an export file carries its own stem stride
    if args.epochs is not None:
        if not math.isfinite(args.epochs) or args.epochs <= 0:
            raise ValueError(f"--epochs: expected a finite number > 0, got {args.epochs}")
        config = replace(config, epochs=float(args.epochs), steps=None)
    arch = resolve_arch(args.arch)
    if stem_stride is not None:
        arch = replace(arch, stem_stride=stem_stride)
    name = re.sub(r"[^A-Za-z0-9_.@-]+", "-", args.arch[0])[:40] if len(args.arch) == 1 \
        else "blocks"
    out = Path(args.out) if args.out else Path("runs") / f"train-{Path(name).stem}"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: exists and is not a directory (it names the "
                                 "output directory)")
    result = train_full(arch, config, out, resume=args.resume, progress=not args.quiet)
    acc = result["accuracy"]
    print(f"{result['status']}: val accuracy {acc if acc is None else f'{acc:.4f}'} after "
          f"{result['epochs']:.1f} epochs ({result['train_images']} train / "
          f"{result['val_images']} held-out images), {result['params']:,} params, "
          f"{result['macs'] / 1e6:.2f}M MACs at {result['input_size']}px -> {out}")
    return 0 if result["status"] == "ok" else 1


def register(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train an architecture fully, checkpoint, export ONNX")
    p.add_argument("arch", nargs="+", help="reference name (e.g. mnasnet_a1, mobilenet_v2@0.5), "
                   "block strings, or an export .json file")
    p.add_argument("--config", required=True, type=experiment_path,
                   help="experiment YAML or shipped experiment name (its child_training section)")
    p.add_argument("--epochs", type=float, default=None, help="override child_training.epochs")
    p.add_argument("--out", default=None, help="output directory (default runs/train-NAME)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    p.add_argument("--stem-stride", type=int, choices=(1, 2), default=None,
                   help="override the stem stride (default: the config's search_space)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
