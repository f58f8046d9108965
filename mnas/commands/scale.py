"""`mnas scale`: EfficientNet's compound scaling of a found (or reference) architecture.

    mnas scale ARCH --phi N [--alpha A --beta B --gamma G] [--input-size S] [--out FILE]
    mnas scale ARCH --grid --config CONFIG [--step 0.05] [--tolerance 0.1] [--out DIR]

The first prints (and with --out writes, as an export .json every command reads back) the network
scaled by depth alpha^phi, width beta^phi and resolution gamma^phi (search_spaces.scaling). The
second repeats the EfficientNet paper's small grid search at phi = 1: every (alpha, beta, gamma)
with alpha*beta^2*gamma^2 ~= 2 is scaled, timed whole on this device (onnxruntime, as `mnas
latency measure`), trained with the config's child_training recipe at its scaled input size, and
scored with the config's reward and target; each candidate is appended to DIR/grid.jsonl as it
finishes (a rerun resumes), the best by reward is printed and DIR/grid.json written.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnas.commands.latency import _add_profiler_flags, _lut_options, _profiler_config
from mnas.fileio import atomic_write_json

if TYPE_CHECKING:
    from latency.profiler import ProfilerLike
    from mnas.commands import Subparsers
    from mnas.config.schema import ExperimentConfig
    from search_spaces.scaling import Compound
    from search_spaces.specs import ArchSpec


def _grammar_arch(text: list[str]) -> Any:
    from search_spaces import FamilyModel
    from mnas.architectures import resolve_arch

    arch = resolve_arch(text)
    if isinstance(arch, FamilyModel):
        raise ValueError(f"{arch.label}: {arch.family} is outside the block grammar; compound "
                         "scaling needs block strings (e.g. efficientnet_b0, mnasnet_a1, a "
                         "search's export)")
    return arch


def export_record(arch: Any, input_size: int, **extra: Any) -> dict[str, Any]:
    """The `mnas export --format json` shape, which `resolve_arch` reads back."""
    from search_spaces import encode_arch
    return dict(blocks=list(encode_arch(arch)), format="tf", stem_filters=arch.stem_filters,
                stem_stride=arch.stem_stride, head_filters=arch.head_filters,
                dropout=arch.dropout, activation=arch.activation, input_size=input_size, **extra)


def _run_scale(args: argparse.Namespace) -> int:
    from search_spaces import build_model, count_macs, count_params
    from search_spaces.scaling import Compound, compound_scale

    if args.input_size < 1:
        raise ValueError(f"--input-size must be positive, got {args.input_size}")
    base = _grammar_arch(args.arch)
    given = {k: getattr(args, k) for k in ("alpha", "beta", "gamma")
             if getattr(args, k) is not None}
    c = Compound(args.phi, **given)
    arch, size = compound_scale(base, args.input_size, c)
    before, after = build_model(base), build_model(arch)
    print(f"phi {c.phi:g} (alpha {c.alpha:g}, beta {c.beta:g}, gamma {c.gamma:g}; "
          f"alpha*beta^2*gamma^2 = {c.flops_factor:.3f}): depth x{c.depth:.3f}, width "
          f"x{c.width:.3f}, resolution x{c.resolution:.3f}")
    print(f"input {args.input_size} -> {size}; {count_params(before):,} -> "
          f"{count_params(after):,} parameters; {count_macs(before, args.input_size) / 1e6:,.1f}M "
          f"-> {count_macs(after, size) / 1e6:,.1f}M multiply-adds")
    print(" ".join(export_record(arch, size)["blocks"]))
    if args.out:
        record = export_record(arch, size, phi=c.phi, alpha=c.alpha, beta=c.beta, gamma=c.gamma)
        atomic_write_json(args.out, record, indent=2)
        print(f"wrote {args.out}")
    return 0


def _done(path: Path) -> dict[tuple[float, float, float], dict[str, Any]]:
    """Finished grid candidates by (alpha, beta, gamma)."""
    out: dict[tuple[float, float, float], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that candidate runs again
            out[(rec["alpha"], rec["beta"], rec["gamma"])] = rec
    return out


def _score(base: ArchSpec, size0: int, c: Compound, config: ExperimentConfig,
           profiler: ProfilerLike) -> dict[str, Any]:
    """One grid candidate: scaled, timed whole, trained at its input size, rewarded."""
    from latency.keys import arch_onnx
    from mnas.reward import mnas_reward
    from mnas.training.trainer import train_child
    from search_spaces.scaling import compound_scale
    from search_spaces.space import MnasNetSpace

    arch, size = compound_scale(base, size0, c)
    ms = profiler.measure(arch_onnx(MnasNetSpace(input_size=size,
                                                 num_classes=config.space.num_classes),
                                    arch)).ms
    train = config.child_training
    result = train_child(arch, replace(train, data=replace(train.data, input_size=size)))
    alpha, beta = config.reward.weights
    reward = mnas_reward(result.accuracy, ms, target_ms=config.latency.target_ms, alpha=alpha,
                         beta=beta) if result.status == "ok" else None
    return dict(alpha=c.alpha if c.phi else 1.0, beta=c.beta if c.phi else 1.0,
                gamma=c.gamma if c.phi else 1.0, flops_factor=c.flops_factor if c.phi else 1.0,
                input_size=size,
                latency_ms=ms, accuracy=result.accuracy, status=result.status,
                params=result.params, macs=result.macs, reward=reward,
                blocks=export_record(arch, size)["blocks"])


def _run_grid(args: argparse.Namespace) -> int:
    from latency import make_profiler
    from mnas.config.schema import load_config
    from search_spaces.scaling import Compound, constrained_grid

    if not args.config:
        raise ValueError("--grid needs --config CONFIG (its child_training recipe, reward and "
                         "latency.target_ms)")
    config = load_config(args.config)
    size0 = config.child_training.data.input_size or args.input_size
    base = _grammar_arch(args.arch)
    grid = [Compound(0.0)] + constrained_grid(args.step, 2.0, args.tolerance, args.upper)
    profiler = make_profiler(_profiler_config(args, _lut_options(config).profiler))
    out = Path(args.out or "runs/scale-grid")
    out.mkdir(parents=True, exist_ok=True)
    done = _done(out / "grid.jsonl")
    rows = []
    with (out / "grid.jsonl").open("a") as fh:
        for i, c in enumerate(grid):
            rec = done.get((c.alpha, c.beta, c.gamma) if c.phi else (1.0, 1.0, 1.0))
            if rec is None:
                rec = _score(base, size0, c, config, profiler)
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
            rows.append(rec)
            if not args.quiet:
                print(f"  {i + 1}/{len(grid)} alpha {rec['alpha']:g} beta {rec['beta']:g} gamma "
                      f"{rec['gamma']:g}: {rec['latency_ms']:.3f} ms, accuracy "
                      f"{rec['accuracy']:.4f}, reward {rec['reward']}", flush=True)
    scored = [r for r in rows[1:] if r["reward"] is not None]
    best = max(scored, key=lambda r: r["reward"]) if scored else None
    atomic_write_json(out / "grid.json", dict(
        base=rows[0], candidates=rows[1:], best=best, target_ms=config.latency.target_ms,
        reward=list(config.reward.weights), profiler=profiler.provenance()), indent=2)
    print(f"{len(rows) - 1} candidates (alpha*beta^2*gamma^2 within {args.tolerance:g} of 2), "
          f"base {rows[0]['latency_ms']:.3f} ms / accuracy {rows[0]['accuracy']:.4f}")
    if best is not None:
        print(f"best by reward: alpha {best['alpha']:g}, beta {best['beta']:g}, gamma "
              f"{best['gamma']:g}: {best['latency_ms']:.3f} ms, accuracy {best['accuracy']:.4f}, "
              f"reward {best['reward']:.4f} -> {out / 'grid.json'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    return _run_grid(args) if args.grid else _run_scale(args)


def register(sub: Subparsers) -> None:
    p = sub.add_parser("scale", help="compound-scale an architecture (EfficientNet's rule), or "
                       "grid-search alpha, beta, gamma on this device")
    p.add_argument("arch", nargs="+", help="reference name (e.g. efficientnet_b0), block "
                   "strings, or an export .json file")
    p.add_argument("--phi", type=float, default=1.0, help="compound coefficient (default 1)")
    p.add_argument("--alpha", type=float, help="depth base (default: the paper's 1.2)")
    p.add_argument("--beta", type=float, help="width base (default: the paper's 1.1)")
    p.add_argument("--gamma", type=float, help="resolution base (default: the paper's 1.15)")
    p.add_argument("--input-size", type=int, default=224,
                   help="the unscaled input size (grid: used when the config's data has none)")
    p.add_argument("--out", default=None, help="scale: export .json to write; grid: directory "
                   "(default runs/scale-grid)")
    g = p.add_argument_group("grid search (phi = 1, the EfficientNet paper's step for B0)")
    g.add_argument("--grid", action="store_true", help="search alpha, beta, gamma")
    g.add_argument("--config", help="experiment YAML: child_training, reward, latency.target_ms")
    g.add_argument("--step", type=float, default=0.05, help="grid step (default 0.05)")
    g.add_argument("--tolerance", type=float, default=0.1,
                   help="|alpha*beta^2*gamma^2 - 2| allowed (default 0.1)")
    g.add_argument("--upper", type=float, default=1.4, help="largest alpha/beta/gamma (1.4)")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_profiler_flags(p)
    p.set_defaults(func=_run)
