"""`mnas latency measure|build|validate`: time models, build lookup tables, check their fidelity.

    mnas latency measure NAME_OR_BLOCK_STRINGS [--input-size N]
    mnas latency build CONFIG --out FILE [--from-bundle RESULTS]
    mnas latency bundle CONFIG --out DIR
    mnas latency validate CONFIG --lut FILE --samples N [--json OUT]

All timing is onnxruntime at batch 1 (see `latency.profiler`); the latency package and
onnxruntime are imported only when one of these commands runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnas.commands.describe import check_model_size
from mnas.config.experiments import experiment_path
from mnas.fileio import atomic_write_json

if TYPE_CHECKING:
    from mnas.commands import Subparsers

_PROFILER_FLAGS = ("provider", "threads", "runs", "rounds", "warmup", "statistic")


def _add_table_flags(p: argparse.ArgumentParser) -> None:
    """What a table times, shared by `build` (timed here) and `bundle` (timed on the device)."""
    p.add_argument("--calibration-samples", type=int,
                   help="end-to-end samples to fit the calibration (default 120)")
    p.add_argument("--validation-samples", type=int, help="also time this many fresh "
                   "architectures between chunks, never fitted on, for `validate` to score "
                   "(default 0)")
    p.add_argument("--passes", type=int, help="timings of every layer, in separate passes "
                   "minutes apart (default 2; rerun with more to add passes to a table)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_profiler_flags(p)


def _add_profiler_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("profiler (defaults: config's latency.kwargs.profiler, else "
                             "CPUExecutionProvider, 1 thread, 10 warm-up, 3 rounds x 30 runs)")
    g.add_argument("--provider", help="onnxruntime execution provider")
    g.add_argument("--threads", type=int, help="intra-op threads")
    g.add_argument("--runs", type=int, help="timed runs per round")
    g.add_argument("--rounds", type=int, help="rounds (the spread is across rounds)")
    g.add_argument("--warmup", type=int, help="untimed warm-up runs")
    g.add_argument("--statistic", help="of the timed runs: min (default), median, p25, p10, mean")


def _profiler_config(args: argparse.Namespace, base: Any = None) -> Any:
    """The config's `ProfilerConfig` (or the defaults) with the profiler flags applied, checked
    by the config loader like the config itself."""
    from latency.options import ProfilerConfig
    from mnas.config.loader import load_section, to_plain

    data = to_plain(base) if base is not None else {}
    data.update({k: getattr(args, k) for k in _PROFILER_FLAGS if getattr(args, k) is not None})
    return load_section(ProfilerConfig, data, "latency.kwargs.profiler")


def _run_measure(args: argparse.Namespace) -> int:
    from latency import make_profiler
    from latency.keys import arch_onnx
    from mnas.architectures import resolve_arch
    from search_spaces.space import MnasNetSpace

    check_model_size(args.input_size, args.num_classes)
    arch = resolve_arch(args.arch)
    profiler = make_profiler(_profiler_config(args))
    space = MnasNetSpace(input_size=args.input_size, num_classes=args.num_classes)
    m = profiler.measure(arch_onnx(space, arch))
    cfg = profiler.config
    label = " ".join(args.arch)
    print(f"{label}: {m.ms:.3f} ms ({args.input_size}x{args.input_size}, batch 1; "
          f"{cfg.statistic} of {cfg.rounds}x{cfg.runs} runs after {cfg.warmup} warm-up, "
          f"spread {m.spread:.1%}; "
          f"onnxruntime {profiler.provenance()['onnxruntime']} {cfg.provider}, "
          f"{cfg.threads} thread{'s' if cfg.threads > 1 else ''})")
    return 0


def _config(args: argparse.Namespace) -> Any:
    from mnas.config.schema import load_config

    return load_config(args.config, args.overrides)


def _lut_options(config: Any) -> Any:
    """The lut predictor's options in the config (profiler/build settings live there)."""
    from latency.options import LutOptions

    kwargs = config.latency.kwargs
    return kwargs if isinstance(kwargs, LutOptions) else LutOptions()


def _build_options(args: argparse.Namespace, lut: Any) -> Any:
    """The config's `BuildOptions` with the build flags applied, checked by the config loader."""
    from latency.options import BuildOptions
    from mnas.config.loader import load_section, to_plain

    build = to_plain(lut.build)
    for key in ("calibration_samples", "validation_samples", "passes"):
        if getattr(args, key) is not None:
            build[key] = getattr(args, key)
    return load_section(BuildOptions, build, "latency.kwargs.build")


def _run_build(args: argparse.Namespace) -> int:
    from latency import make_profiler
    from latency.build import build_table

    config = _config(args)
    out = args.out or config.latency.table
    if not out:
        raise ValueError("latency build: needs --out FILE (or latency.table in the config)")
    if os.path.isdir(out):
        raise IsADirectoryError(f"{out}: is a directory (--out names the table file)")
    space = config.space
    started = time.time()
    if args.from_bundle:
        from latency.bundle import assemble_table
        table = assemble_table(space, args.from_bundle, out)
    else:
        lut = _lut_options(config)
        profiler = make_profiler(_profiler_config(args, lut.profiler))
        table = build_table(space, profiler, out, _build_options(args, lut),
                            progress=not args.no_progress)
    cal = table.calibration
    fits = cal.get("fits", {})
    sel = cal.get("selected", "none")
    print(f"wrote {out}: {len(table.entries)} entries, {len(table.samples)} calibration samples, "
          f"space {table.fingerprint} at {space.input_size}x{space.input_size}, "
          f"{(time.time() - started) / 60:.1f} min this session")
    nan = float("nan")
    print(f"calibration {sel} (cross-validated MAPE {fits.get(sel, {}).get('cv_mape', nan):.1%}; "
          f"flops baseline {fits.get('flops', {}).get('cv_mape', nan):.1%})")
    return 0


def _run_bundle(args: argparse.Namespace) -> int:
    from latency.bundle import SCRIPT, write_bundle
    from mnas.config.loader import to_plain

    config = _config(args)
    if os.path.isfile(args.out):
        raise NotADirectoryError(f"{args.out}: is a file (--out names the bundle directory)")
    lut = _lut_options(config)
    profiler = _profiler_config(args, lut.profiler)
    manifest = write_bundle(config.space, args.out, _build_options(args, lut),
                            to_plain(profiler), progress=not args.no_progress)
    graphs = manifest["graphs"]
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*.onnx"))
    layers = sum(g["kind"] in ("layer", "stem", "head") for g in graphs)
    print(f"wrote {args.out}: {layers} table entries and {len(graphs) - layers} networks as "
          f"ONNX ({size / 1e6:.1f} MB), manifest.json and {SCRIPT}")
    print(f"on the device (Python, numpy, onnxruntime): python {SCRIPT} . [--provider P] "
          f"[--threads N] inside the copied directory; then here: mnas latency build "
          f"{args.config} --from-bundle results.json --out table.json")
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from latency import load_table, make_profiler
    from latency.build import VALIDATION_SEED
    from latency.options import ProfilerConfig
    from latency.profiler import cpu_model, onnxruntime_version
    from latency.validate import format_report, validate
    from mnas.config.loader import load_section

    config = _config(args)
    path = args.lut or config.latency.table
    if not path:
        raise ValueError("latency validate: needs --lut FILE (or latency.table in the config)")
    if args.samples < 2:
        raise ValueError(f"--samples: need at least 2 architectures, got {args.samples}")
    if args.sweeps < 1:
        raise ValueError(f"--sweeps: expected an integer >= 1, got {args.sweeps}")
    if args.json:  # checked before minutes of measuring, not after
        _check_output_file(Path(args.json))
    table = load_table(path)
    table.check_space(config.space)
    prov = table.provenance
    profiler = make_profiler(load_section(ProfilerConfig, prov.get("profiler"),
                                          f"{path}: provenance.profiler"))
    here = {"cpu": cpu_model(), "onnxruntime": onnxruntime_version()}
    for key, now in here.items():
        if prov.get(key) != now:
            print(f"mnas latency: note: table measured with {key} {prov.get(key)!r}, this machine "
                  f"has {now!r}", file=sys.stderr)
    seed = VALIDATION_SEED if args.seed is None else args.seed
    result = validate(config.space, table, profiler, args.samples, seed=seed,
                      sweeps=args.sweeps, progress=not args.no_progress)
    result.update(table=str(Path(path).resolve()), space_fingerprint=table.fingerprint,
                  input_size=config.space.input_size)
    print(format_report(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.json, result)
    return 0


def _check_output_file(path: Path) -> None:
    """ValueError unless `path` can be written as a file: its directory exists (or is created
    now) and is writable, and `path` itself is not a directory."""
    if path.is_dir():
        raise IsADirectoryError(f"--json {path}: is a directory (it names the output file)")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--json {path}: cannot create {parent} "
                         f"({exc.strerror or type(exc).__name__})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--json {path}: {parent} is not writable")


def register(sub: Subparsers) -> None:
    p = sub.add_parser("latency", help="time models, build and validate latency lookup tables")
    lsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    m = lsub.add_parser("measure", help="time one whole model end to end (onnxruntime, batch 1)")
    m.add_argument("arch", nargs="+", help="reference name (e.g. mnasnet_a1, mobilenet_v2@0.5), "
                   "block strings, or an export .json file")
    m.add_argument("--input-size", type=int, default=224)
    m.add_argument("--num-classes", type=int, default=1000)
    _add_profiler_flags(m)
    m.set_defaults(func=_run_measure)

    b = lsub.add_parser("build", help="time every layer of a config's search space into a "
                        "lookup table (resumable)")
    b.add_argument("config", type=experiment_path,
                   help="experiment YAML or shipped experiment name (its search_space section)")
    b.add_argument("--out", help="table file (default: the config's latency.table); an "
                   "unfinished one is resumed")
    _add_table_flags(b)
    b.add_argument("--from-bundle", metavar="RESULTS", help="assemble the table from a device "
                   "bundle's results file (`mnas latency bundle`, then the bundle's script on "
                   "the device) instead of timing here")
    b.set_defaults(func=_run_build)

    d = lsub.add_parser("bundle", help="write what a table build times (ONNX, manifest) and a "
                        "standalone timing script (numpy + onnxruntime only) for the device")
    d.add_argument("config", type=experiment_path,
                   help="experiment YAML or shipped experiment name (its search_space section)")
    d.add_argument("--out", required=True, help="bundle directory (an unfinished one resumes)")
    _add_table_flags(d)
    d.set_defaults(func=_run_bundle)

    v = lsub.add_parser("validate", help="compare lut and flops predictions with end-to-end "
                        "measurements of fresh random architectures")
    v.add_argument("config", type=experiment_path,
                   help="experiment YAML or shipped experiment name (its search_space section)")
    v.add_argument("--lut", help="table file (default: the config's latency.table)")
    v.add_argument("--samples", type=int, default=50, help="architectures to measure (default 50)")
    v.add_argument("--seed", type=int, default=None, help="sampling seed")
    v.add_argument("--sweeps", type=int, default=2, help="timings of every architecture, in "
                   "separate sweeps over all of them; each keeps the best (default 2)")
    v.add_argument("--json", help="also write the figures to this JSON file")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=_run_validate)
