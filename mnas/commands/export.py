"""`mnas export RUN_DIR`: the best architectures of a search as block strings, JSON or ONNX."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnas.reward import REWARD_PRESETS, resolve_weights

if TYPE_CHECKING:  # the CLI imports every command module: keep torch out of `mnas --help`
    from mnas.commands import Subparsers
    from mnas.config.schema import ExperimentConfig
    from mnas.search.ranking import Candidate, History

#: Channels of the data sets whose layout is known without loading them (ONNX input shape).
_CHANNELS = {"digits": 1, "mnist": 1, "cifar10": 3, "synthetic": 3}


def _weights(args: argparse.Namespace, config: ExperimentConfig) -> tuple[float, float, float,
                                                                           bool]:
    """(target_ms, alpha, beta, rescored?) from the flags, falling back to the run's config."""
    explicit = args.reward is not None or args.alpha is not None or args.beta is not None
    if args.target_ms is not None and args.target_ms <= 0:
        raise ValueError(f"--target-ms must be > 0, got {args.target_ms:g}")
    alpha, beta = (resolve_weights(args.reward, args.alpha, args.beta) if explicit
                   else config.reward.weights)
    target = args.target_ms if args.target_ms is not None else config.latency.target_ms
    return target, alpha, beta, explicit or args.target_ms is not None


def select(history: History, config: ExperimentConfig,
           args: argparse.Namespace) -> tuple[list[Candidate], str]:
    """The candidates to export and a one-line description of how they were chosen."""
    from mnas.search.ranking import pareto_front, rank, rescore
    target, alpha, beta, rescored = _weights(args, config)
    candidates = list(history.candidates)
    how = "logged reward"
    if rescored:
        candidates = rescore(candidates, target_ms=target, alpha=alpha, beta=beta)
        how = f"reward re-scored at T={target:g} ms, alpha={alpha:g}, beta={beta:g}"
    if args.by == "pareto":
        chosen = pareto_front(candidates)
        if args.top is not None:
            chosen = chosen[:args.top]
        return chosen, f"accuracy-vs-latency Pareto front, fastest first ({how})"
    return rank(candidates, args.top or 5), f"top by {how}"


def _summary(history: History, run_dir: Path) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(history.status_counts.items(),
                                                      key=lambda kv: (kv[0] != "ok", kv[0])))
    unique = len({c.arch for c in history.candidates})
    return (f"{run_dir}: {history.total} children ({counts or 'none'}); "
            f"{unique} distinct trained architectures")


def _print_text(entries: list[dict[str, Any]], how: str, fmt: str) -> None:
    if not entries:
        return
    e = entries[0]
    if "space" in e:  # another space: its own text form, one architecture per line
        print(f"# {how}; {e['space']} space")
        for i, e in enumerate(entries, 1):
            print(f"#{i} reward {e['reward']:.4f}  accuracy {e['accuracy']:.4f}  "
                  f"latency {e['latency_ms']:.3f} ms  (child {e['child']})")
            print(" ".join(e["arch"]))
        return
    print(f"# {how}; stem {e['stem_filters']}/s{e['stem_stride']}, head {e['head_filters']}, "
          f"dropout {e['dropout']:g}, input {e['input_size']}, {e['num_classes']} classes "
          "(block strings do not carry these: use --format json to keep them)")
    for i, e in enumerate(entries, 1):
        params = f", {e['params']:,} params" if e["params"] is not None else ""
        print(f"#{i} reward {e['reward']:.4f}  accuracy {e['accuracy']:.4f}  "
              f"latency {e['latency_ms']:.3f} ms  (child {e['child']}{params})")
        print(" ".join(e["blocks"]))


def _write_onnx(chosen: list[Candidate], config: ExperimentConfig, out: Path,
                in_channels: int, dynamic_batch: bool = True) -> list[Path]:
    from mnas.architectures import to_arch
    from search_spaces.builder import build_model
    from search_spaces.onnx_export import export_onnx
    space = config.space
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, c in enumerate(chosen, 1):
        model = build_model(to_arch(c, space), num_classes=space.num_classes,
                            in_channels=in_channels)
        paths.append(export_onnx(model, out / f"rank{i:02d}_child{c.index}.onnx",
                                 space.input_size, in_channels=in_channels,
                                 dynamic_batch=dynamic_batch))
    return paths


def _run(args: argparse.Namespace) -> int:
    from mnas.config.schema import load_config
    from mnas.architectures import export_entry
    from mnas.search.ranking import read_history
    from mnas.search.rundir import RunDir
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be >= 1, got {args.top}")
    if args.onnx and Path(args.onnx).exists() and not Path(args.onnx).is_dir():
        raise NotADirectoryError(f"--onnx {args.onnx}: exists and is not a directory (it names "
                                 "the directory the models are written to)")
    config = load_config(RunDir(run_dir).config)
    from search_spaces.space import MnasNetSpace
    if not isinstance(config.space, MnasNetSpace) and (args.format == "timm" or args.onnx):
        option = "--format timm" if args.format == "timm" else "--onnx"
        raise ValueError(f"{option}: only for mnasnet-space runs (this run searched "
                         f"{config.search_space['name']}; use the default format or json)")
    history = read_history(RunDir(run_dir).history)
    for warning in history.warnings:
        print(f"mnas export: warning: {warning}", file=sys.stderr)
    print(_summary(history, run_dir), file=sys.stderr)
    chosen, how = select(history, config, args)
    fmt = "tf" if args.format == "json" else args.format
    entries = [export_entry(c, config.space, fmt) for c in chosen]
    tokens = {t for e in entries for b in e.get("blocks", ()) for t in b.split("_")}
    if args.format == "tf" and tokens & {"conv", "poolskip"}:
        print("mnas export: note: 'conv' and 'poolskip' are mnas tokens: TF's MnasNet decoder "
              "ignores them (use --format json to keep everything mnas needs)", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(entries, indent=2))
    else:
        _print_text(entries, how, fmt)
    if not chosen:
        print("mnas export: no successfully trained child to export yet", file=sys.stderr)
    if args.onnx and chosen:
        channels = args.in_channels or _CHANNELS.get(config.child_training.data.name, 3)
        for path in _write_onnx(chosen, config, Path(args.onnx), channels,
                                not args.static_batch):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("export", help="best architectures of a search run (block strings, JSON, "
                       "ONNX), optionally re-scored under a new latency target")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a search run directory (history.jsonl, "
                   "config.yaml)")
    p.add_argument("--top", type=int, default=None, metavar="K",
                   help="how many to export (default 5 by reward; the whole front by pareto)")
    p.add_argument("--by", choices=("reward", "pareto"), default="reward")
    p.add_argument("--format", choices=("tf", "timm", "json"), default="tf",
                   help="tf: official MnasNet block strings (default); timm; json: objects "
                   "that `mnas describe`/`mnas train` read back")
    p.add_argument("--onnx", metavar="DIR", help="also write one ONNX model per architecture "
                   "(input 'input' float32 [batch, C, H, W], any batch; output 'output' "
                   "[batch, classes] logits)")
    p.add_argument("--static-batch", action="store_true",
                   help="ONNX with a fixed batch of 1 instead of a dynamic batch axis")
    p.add_argument("--in-channels", type=int, default=None, metavar="C",
                   help="ONNX input channels (default: from the data set, else 3)")
    p.add_argument("--target-ms", type=float, default=None, metavar="T",
                   help="re-score logged accuracy/latency under this latency target")
    p.add_argument("--reward", choices=tuple(REWARD_PRESETS), default=None,
                   help="re-score with this reward preset")
    p.add_argument("--alpha", type=float, default=None, help="re-score with explicit alpha "
                   "(with --beta)")
    p.add_argument("--beta", type=float, default=None)
    p.set_defaults(func=_run)
