"""Latency benchmark: lookup-table build time, lut vs flops fidelity, predict_many throughput.

For the full default MnasNet space at 224x224 and at 32x32: build the table (timed; every layer,
calibration samples, and the validation architectures timed between chunks, interleaved in time
with the entries), then measure the same fresh architectures end to end again (never the
calibration ones) and score `lut` and `flops` on both timings (MAPE, within +-5% / +-10%,
Kendall tau, Spearman rho) next to the measurement's own spread (median CV across rounds). The
build time therefore includes the validation networks. Then time
`LutPredictor.predict_many` on the 224 table (archs/s, median of repeats, fresh predictor cache
and warm). onnxruntime CPUExecutionProvider, one thread, batch 1, pinned to one core.

    .venv/bin/python bench/latency_bench.py [--samples 100] [--sizes 32 224] [--statistic min]
        [--passes 2] [--sweeps 2]

Each table is built with `--passes` timings per entry and per calibration network (separate
passes, minutes apart); the report also scores the same table using only its first pass, to show
what the extra pass buys. Validation networks are timed in `--sweeps` sweeps, as `mnas latency
validate` does, and the whole validation measurement is repeated once to show its own
repeatability.

Writes bench/results/latency.json after every stage (so a cut-off run keeps what finished) and
prints a table. Tables go to runs/latency/bench_<size>_<statistic>.json; an existing complete
table is reused (its build time is then not re-measured: see `build.reused`) unless --rebuild.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, even if the installed package is stale

import torch

from latency import load_table, make_profiler
from latency.build import build_table
from latency.options import BuildOptions
from latency.keys import space_entries
from latency.predictors import LutPredictor
from latency.validate import (METRICS, combine_sweeps, fidelity,
                              measure_sweeps, validate)
from search_spaces.space import MnasNetSpace

if TYPE_CHECKING:
    from latency.profiler import ProfilerLike

PROFILER = {"provider": "CPUExecutionProvider", "threads": 1, "warmup": 10, "runs": 30,
            "rounds": 3}


def _write(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out)


def bench_size(size: int, samples: int, calibration: int, table_dir: Path, rebuild: bool,
               progress: bool, profiler_cfg: dict[str, Any], passes: int, sweeps: int
               ) -> dict[str, Any]:
    """Build (timed) and validate the table of the default space at `size`."""
    space = MnasNetSpace(input_size=size)
    path = table_dir / f"bench_{size}_{profiler_cfg['statistic']}.json"
    if rebuild and path.exists():
        path.unlink()
    reused = path.exists() and load_table(path).complete
    profiler = make_profiler(profiler_cfg)
    load0, t0 = os.getloadavg()[0], time.time()
    table = build_table(space, profiler, path,
                        BuildOptions(calibration_samples=calibration, passes=passes,
                                     validation_samples=samples),
                        progress=progress)
    build_s = time.time() - t0
    fits = table.calibration["fits"]
    out: dict[str, Any] = {
        "input_size": size, "table": str(path), "entries": len(table.entries),
        "space_entries": len(space_entries(space)),
        "build": {"seconds": round(build_s, 1), "minutes": round(build_s / 60, 2),
                  "reused": reused, "calibration_samples": len(table.samples),
                  "loadavg_1min_at_start": round(load0, 2),
                  "canary_checks": len(table.canary),
                  "canary_ratio_range": [round(min(c["ratio"] for c in table.canary), 3),
                                         round(max(c["ratio"] for c in table.canary), 3)]
                  if table.canary else None,
                  "entry_spread_median": float(np.median([e["spread"] for e in
                                                          table.entries.values()])),
                  "passes": passes,
                  "calibration_selected": table.calibration["selected"],
                  "calibration_cv_mape": {k: v["cv_mape"] for k, v in fits.items()}},
        "provenance": table.provenance,
    }
    load1 = os.getloadavg()[0]
    out["validation"] = validate(space, table, profiler, samples, sweeps=sweeps,
                                 progress=progress)
    out["validation"]["loadavg_1min"] = [round(load1, 2), round(os.getloadavg()[0], 2)]
    out["remeasure"] = remeasure(space, profiler, out["validation"]["per_arch"], sweeps)
    if passes > 1:
        out["first_pass_only"] = first_pass_only(space, table, out["validation"]["per_arch"])
    out["per_calibration"] = per_calibration(space, table, out["validation"]["per_arch"])
    return out


def first_pass_predictor(space: MnasNetSpace, table: Any) -> LutPredictor:
    """`lut` from only the first pass of every entry, re-calibrated on the same samples."""
    from dataclasses import replace

    first = {k: dict(v, ms=v.get("passes_ms", [v["ms"]])[0]) for k, v in table.entries.items()}
    raw = LutPredictor(space, replace(table, entries=first, calibration={}), calibration="none")
    calibration = raw.fit_calibration(table.samples)
    return LutPredictor(space, replace(table, entries=first, calibration=calibration))


def first_pass_only(space: MnasNetSpace, table: Any, per: dict[str, Any]) -> dict[str, Any]:
    """The same table scored with only its first pass per entry: what the extra passes buy."""
    one = first_pass_predictor(space, table)
    archs = [space.decode(a) for a in per["actions"]]
    return dict(fidelity(one.predict_many(archs), per["measured_ms"]),
                calibration=one.calibration)


def remeasure(space: MnasNetSpace, profiler: ProfilerLike, per: dict[str, Any], sweeps: int
              ) -> dict[str, Any]:
    """Time the validation archs again, the same way (`sweeps` sweeps, combined alike): how
    well the measurement agrees with itself (the ceiling for any predictor), and lut/flops
    against the mean of both."""
    archs = [space.decode(a) for a in per["actions"]]
    first = np.array(per["measured_ms"])
    again, _ = measure_sweeps(space, archs, profiler, sweeps)
    second, _ = combine_sweeps(again, profiler.config.statistic)
    both = (first + second) / 2
    return {"second_vs_first": fidelity(second, first),
            "lut_vs_mean_of_two": fidelity(per["lut_ms"], both),
            "flops_vs_mean_of_two": fidelity(per["flops_ms"], both)}


def bench_throughput(table_path: Path, n: int, repeats: int) -> dict[str, Any]:
    """predict_many archs/s: a fresh predictor (cold block cache) and the same one again."""
    table = load_table(table_path)
    space = MnasNetSpace.from_dict(table.space)
    rng = np.random.default_rng(7)
    archs = [space.sample(rng) for _ in range(n)]
    cold, warm = [], []
    for _ in range(repeats):
        lut = LutPredictor(space, table)
        t = time.perf_counter()
        first = lut.predict_many(archs)
        cold.append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        again = lut.predict_many(archs)
        warm.append(n / (time.perf_counter() - t))
        if not np.array_equal(first, again):
            raise RuntimeError("predict_many is not deterministic")
    one = LutPredictor(space, table)
    t = time.perf_counter()
    for a in archs[:2000]:
        one.predict(a)
    single = 2000 / (time.perf_counter() - t)
    return {"archs": n, "repeats": repeats, "cold_archs_per_s": float(np.median(cold)),
            "warm_archs_per_s": float(np.median(warm)), "predict_one_per_s": single,
            "target_archs_per_s": 50_000}


def per_calibration(space: MnasNetSpace, table: Any, per: dict[str, Any]) -> dict[str, Any]:
    """Every calibration kind in the table, scored on the validation timings after the build
    and on those interleaved with it: what the selected kind buys over the others."""
    archs = [space.decode(a) for a in per["actions"]]
    inter = [space.decode(s["actions"]) for s in table.validation]
    out = {}
    for kind in table.calibration["fits"]:
        if kind == "flops":
            continue
        lut = LutPredictor(space, table, calibration=kind)
        out[kind] = {"after_build": fidelity(lut.predict_many(archs), per["measured_ms"])}
        if len(inter) >= 2:
            out[kind]["interleaved"] = fidelity(lut.predict_many(inter),
                                                [s["ms"] for s in table.validation])
    return out


def rescore(args: argparse.Namespace) -> None:
    """Re-score an existing results file's stored timings (`per_calibration`) and re-time
    predict_many on its table; records the command that did it."""
    result = json.loads(args.out.read_text())
    for size in result["sizes"]:
        r = result[f"r{size}"]
        table = load_table(r["table"])
        r["per_calibration"] = per_calibration(MnasNetSpace.from_dict(table.space), table,
                                               r["validation"]["per_arch"])
    big = max(result["sizes"])
    result["throughput"] = bench_throughput(Path(result[f"r{big}"]["table"]), 100_000, 5)
    command = "python bench/latency_bench.py " + " ".join(sys.argv[1:])
    result["rescored"] = {"command": command,
                          "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    result["throughput"]["table_input_size"] = big
    _write(args.out, result)
    print_report(result)


def print_report(result: dict[str, Any]) -> None:
    for size in result["sizes"]:
        r = result.get(f"r{size}")
        if not r:
            continue
        b, v = r["build"], r["validation"]
        print(f"\n{size}x{size}: {r['entries']} entries built in {b['minutes']:.1f} min"
              f"{' (reused table)' if b['reused'] else ''}; {v['samples']} validation archs, "
              f"measurement CV median {v['measurement_cv']:.1%} (p90 "
              f"{v['measurement_cv_p90']:.1%}); canary ratio {v['canary_ratio']}")
        print(f"  {'metric':<13}{'lut':>9}{'flops':>9}")
        for key in METRICS:
            fmt = "{:>9.3f}" if "tau" in key or "rho" in key else "{:>9.1%}"
            print(f"  {key:<13}" + fmt.format(v["lut"][key]) + fmt.format(v["flops"][key]))
        sv = v.get("sweep_vs_sweep")
        if sv:
            print(f"  one sweep against another: within 10% {sv['within_10pct']:.0%}, Kendall "
                  f"tau {sv['kendall_tau']:.3f} (the best of {v['sweeps']} is scored above)")
        inter = v.get("interleaved")
        if inter:
            lut, fl = inter["lut"], inter["flops"]
            print(f"  the same architectures timed interleaved with the build: lut MAPE "
                  f"{lut['mape']:.1%}, within 5% {lut['within_5pct']:.0%}, within 10% "
                  f"{lut['within_10pct']:.0%}, Kendall tau {lut['kendall_tau']:.3f}; flops MAPE "
                  f"{fl['mape']:.1%}, tau {fl['kendall_tau']:.3f}")
        fp = r.get("first_pass_only")
        if fp:
            print(f"  lut from the first pass only: MAPE {fp['mape']:.1%}, within 10% "
                  f"{fp['within_10pct']:.0%}, Kendall tau {fp['kendall_tau']:.3f}")
        for kind, sc in (r.get("per_calibration") or {}).items():
            ib = sc.get("interleaved", {})
            print(f"  calibration {kind:<17} after the build: within 10% "
                  f"{sc['after_build']['within_10pct']:.0%}, tau "
                  f"{sc['after_build']['kendall_tau']:.3f}; interleaved: within 10% "
                  f"{ib.get('within_10pct', float('nan')):.0%}, tau "
                  f"{ib.get('kendall_tau', float('nan')):.3f}")
        rm = r.get("remeasure")
        if rm:
            s = rm["second_vs_first"]
            print(f"  measurement vs itself (second pass): MAPE {s['mape']:.1%}, within 5% "
                  f"{s['within_5pct']:.0%}, Kendall tau {s['kendall_tau']:.3f}; vs the mean of "
                  f"both passes lut tau {rm['lut_vs_mean_of_two']['kendall_tau']:.3f}, flops "
                  f"tau {rm['flops_vs_mean_of_two']['kendall_tau']:.3f}")
    t = result.get("throughput")
    if t:
        print(f"\npredict_many: {t['cold_archs_per_s']:,.0f} archs/s cold cache, "
              f"{t['warm_archs_per_s']:,.0f} warm ({t['archs']} archs, median of "
              f"{t['repeats']}); predict(): {t['predict_one_per_s']:,.0f}/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    ap.add_argument("--samples", type=int, default=100, help="validation archs per size")
    ap.add_argument("--calibration-samples", type=int, default=120)
    ap.add_argument("--table-dir", type=Path, default=ROOT / "runs" / "latency")
    ap.add_argument("--statistic", default="min", help="profiler statistic of the runs "
                    "(min: the default, far steadier on a noisy shared VM than the median)")
    ap.add_argument("--passes", type=int, default=2, help="timings per table entry")
    ap.add_argument("--sweeps", type=int, default=2, help="timings per validation architecture")
    ap.add_argument("--out", type=Path, help="default bench/results/latency.json (min) or "
                    "latency_<statistic>.json")
    ap.add_argument("--rebuild", action="store_true", help="rebuild existing tables (timed)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--rescore", action="store_true", help="no new timings: re-score the "
                    "stored ones with every calibration kind and re-time predict_many, updating "
                    "the results file (after a predictor-only change)")
    args = ap.parse_args()
    profiler_cfg = dict(PROFILER, statistic=args.statistic)
    suffix = "" if args.statistic == "min" else f"_{args.statistic}"
    args.out = args.out or ROOT / "bench" / "results" / f"latency{suffix}.json"
    torch.set_num_threads(1)  # exports only; timing is onnxruntime's, pinned to one core
    if args.rescore:
        rescore(args)
        return
    result: dict[str, Any] = {
        "command": "python bench/latency_bench.py " + " ".join(sys.argv[1:]),
        "sizes": args.sizes, "samples": args.samples,
        "calibration_samples": args.calibration_samples, "profiler": profiler_cfg,
        "passes": args.passes, "sweeps": args.sweeps,
        "cpu_count": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                              time.gmtime()),
    }
    for size in args.sizes:
        result[f"r{size}"] = bench_size(size, args.samples, args.calibration_samples,
                                        args.table_dir, args.rebuild, not args.no_progress,
                                        profiler_cfg, args.passes, args.sweeps)
        _write(args.out, result)
    big = max(args.sizes)
    result["throughput"] = bench_throughput(
        args.table_dir / f"bench_{big}_{args.statistic}.json", 100_000, 5)
    result["throughput"]["table_input_size"] = big
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write(args.out, result)
    print_report(result)


if __name__ == "__main__":
    main()
