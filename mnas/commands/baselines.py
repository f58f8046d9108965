"""`mnas baselines`: where the known lightweight designs stand on this device.

    mnas baselines [--input-size 32] [--families a,b] [--train CONFIG] [--out DIR]

Every reference family at every width it was published at is exported to ONNX and timed whole,
the same way as `mnas latency measure` (its profiler and flags), all models round-robin within
each round so that drift of a shared machine hits them alike. Optionally each is trained with a
config's `child_training` recipe for its accuracy. Prints a table; writes DIR/baselines.json and
DIR/baselines.png (latency vs multiply-adds, one line per family). Trained results are appended
to DIR/trained.jsonl per model, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnas.commands.latency import _add_profiler_flags, _profiler_config
from mnas.fileio import atomic_write_json

if TYPE_CHECKING:
    from mnas.commands import Subparsers

JSON_NAME, PLOT_NAME, TRAINED_NAME = "baselines.json", "baselines.png", "trained.jsonl"


def baseline_models(families: list[str] | None, stem_stride: int) -> list[dict[str, Any]]:
    """One row per (family, published width) with its network."""
    from search_spaces import (published_widths, reference_label, reference_network,
                               reference_network_names)
    names = reference_network_names()
    chosen = families or names
    for name in chosen:
        if name not in names:
            raise ValueError(f"--families: unknown family {name!r} (expected one of "
                             f"{', '.join(names)})")
    return [{"family": name, "width": width, "name": reference_label(name, width),
             "net": reference_network(name, width, stem_stride=stem_stride), "accuracy": None}
            for name in chosen for width in published_widths(name)]


def _train_config(path: str, epochs: float | None) -> Any:
    from dataclasses import replace

    from mnas.config.schema import load_config
    config = load_config(path).child_training
    if epochs is not None:
        if epochs <= 0:
            raise ValueError(f"--epochs: expected a number > 0, got {epochs}")
        config = replace(config, epochs=float(epochs), steps=None)
    return config


def train_rows(rows: list[dict[str, Any]], config: Any, out: Path, progress: bool) -> None:
    """Accuracy of every row under `config`, each appended to trained.jsonl as it finishes
    (rows already there for the same recipe and network are reused)."""
    from mnas.training.trainer import train_child
    from search_spaces import network_strings
    path = out / TRAINED_NAME
    recipe = config.to_dict()
    done: dict[tuple[str, ...], dict[str, Any]] = {}  # block strings + stem -> trained record
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that model is trained again
            if rec.get("child_training") == recipe:
                done[tuple(rec["network"])] = rec
    with path.open("a") as fh:
        for i, row in enumerate(rows):
            key = tuple(network_strings(row["net"])) + (f"stem{_stem(row['net'])}",)
            rec = done.get(key)
            if rec is None:
                result = train_child(row["net"], config)
                rec = dict(name=row["name"], network=list(key), child_training=recipe,
                           **result.to_dict())
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
            row["accuracy"] = rec["accuracy"] if rec["status"] == "ok" else None
            row["train_status"] = rec["status"]
            if progress:
                print(f"  trained {i + 1}/{len(rows)} {row['name']}: {rec['status']}, accuracy "
                      f"{rec['accuracy']:.4f} ({rec['wall_time_s']:.0f} s)", flush=True)


def _stem(net: Any) -> int:
    return int(net.stem_stride)


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Rank agreement of two lists (1: same order), via scipy."""
    from scipy.stats import kendalltau
    return float(kendalltau(x, y).statistic) if len(x) > 1 else float("nan")


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("model", "params", "MMACs", "latency ms", "spread", "us/MMAC", "accuracy")
    lines = [header]
    for r in sorted(rows, key=lambda r: r["latency_ms"]):
        acc = r.get("accuracy")
        lines.append((r["name"], f"{r['params']:,}", f"{r['macs'] / 1e6:.2f}",
                      f"{r['latency_ms']:.3f}", f"{r['spread']:.1%}",
                      f"{1e3 * r['latency_ms'] / max(r['macs'] / 1e6, 1e-9):.1f}",
                      "-" if acc is None else f"{acc:.4f}"))
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                               for c, (cell, w) in enumerate(zip(line, widths)))
                     for line in lines)


def run_baselines(args: argparse.Namespace) -> dict[str, Any]:
    from latency import make_profiler
    from latency.keys import arch_onnx
    from search_spaces import build_network, count_macs, count_params
    from search_spaces.space import MnasNetSpace

    if args.input_size < 1 or args.num_classes < 1:
        raise ValueError("--input-size and --num-classes must be positive")
    families = [f for f in args.families.split(",") if f] if args.families else None
    config = _train_config(args.train, args.epochs) if args.train else None
    profiler = make_profiler(_profiler_config(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = baseline_models(families, args.stem_stride)
    space = MnasNetSpace(input_size=args.input_size, num_classes=args.num_classes)
    started = time.time()
    graphs = []
    from mnas.progress import progress_bar
    for row in progress_bar(len(rows), desc="export", unit="model", enabled=not args.quiet,
                            iterable=rows):
        model = build_network(row["net"], num_classes=args.num_classes)
        row.update(params=count_params(model), macs=count_macs(model, args.input_size))
        graphs.append(arch_onnx(space, row["net"]))
    if not args.quiet:
        print(f"timing {len(rows)} models round-robin ({profiler.config.rounds} rounds)...",
              flush=True)
    for row, m in zip(rows, profiler.measure_many(graphs)):
        row.update(latency_ms=m.ms, spread=m.spread, rounds_ms=list(m.rounds_ms))
    if config is not None:
        train_rows(rows, config, out, progress=not args.quiet)
    tau = kendall_tau([r["macs"] for r in rows], [r["latency_ms"] for r in rows])
    result = dict(
        input_size=args.input_size, num_classes=args.num_classes, stem_stride=args.stem_stride,
        kendall_tau_macs_latency=tau, wall_time_s=round(time.time() - started, 1),
        profiler=profiler.provenance(),
        child_training=config.to_dict() if config is not None else None,
        models=[{k: v for k, v in r.items() if k != "net"} for r in rows])
    atomic_write_json(out / JSON_NAME, result, indent=2)
    from mnas.tracking import plot_baselines
    plot_baselines(result["models"], out / PLOT_NAME, title=(
        f"{args.input_size}x{args.input_size}, batch 1, onnxruntime "
        f"{profiler.config.threads} thread(s); Kendall tau(MACs, latency) {tau:.2f}"))
    return result


def _run(args: argparse.Namespace) -> int:
    result = run_baselines(args)
    print(format_table(result["models"]))
    print(f"{len(result['models'])} models at {result['input_size']}x{result['input_size']} "
          f"(stem stride {result['stem_stride']}) in {result['wall_time_s']:.0f} s; "
          f"Kendall tau between multiply-adds and measured latency: "
          f"{result['kendall_tau_macs_latency']:.2f} -> {Path(args.out) / JSON_NAME}, "
          f"{Path(args.out) / PLOT_NAME}")
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("baselines", help="time every reference family on this device "
                       "(optionally train each), table + JSON + plot")
    p.add_argument("--input-size", type=int, default=32, help="input resolution (default 32)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--stem-stride", type=int, choices=(1, 2), default=2,
                   help="stem stride of every model (1: the small-input variant, as the "
                   "32x32 search space uses)")
    p.add_argument("--families", default=None,
                   help="comma-separated reference names (default: all)")
    p.add_argument("--train", metavar="CONFIG", default=None,
                   help="also train each model with this experiment's child_training recipe")
    p.add_argument("--epochs", type=float, default=None, help="override child_training.epochs")
    p.add_argument("--out", default="runs/baselines", help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_profiler_flags(p)
    p.set_defaults(func=_run)
