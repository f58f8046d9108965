"""Fidelity of table-based predictors against end-to-end measurements.

A search only needs latency predictions that *rank* architectures and land near the target, so
we report error (MAPE, share within +-5% / +-10%) and rank agreement (Kendall tau, Spearman rho),
always next to the measurement's own spread: a predictor cannot be judged more precisely than
the machine repeats itself. Validation architectures are drawn with their own seed and never
include the table's calibration samples, and they are timed in a separate pass (in small
round-robin groups, so drift during the pass hits them alike), so no predictor is scored on
the data that fitted it.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from mnas.progress import progress_bar
from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec

from .build import VALIDATION_SEED, validation_actions
from .keys import arch_onnx, canary_onnx
from .predictors import FlopsPredictor, LutPredictor
from .table import LatencyTable

if TYPE_CHECKING:
    from .profiler import ProfilerLike

#: Seed offset for validation samples (table builds use small seeds for calibration samples).
METRICS = ("mape", "within_5pct", "within_10pct", "kendall_tau", "spearman_rho")


def fidelity(predicted: Sequence[float] | np.ndarray,
             measured: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Error and rank-agreement metrics of predictions against measurements (fractions 0..1)."""
    from scipy.stats import kendalltau, spearmanr

    pred = np.asarray(predicted, dtype=float)
    meas = np.asarray(measured, dtype=float)
    if pred.shape != meas.shape or pred.ndim != 1 or len(pred) < 2:
        raise ValueError(f"fidelity: need two equally long 1-D series of >= 2 values, got "
                         f"shapes {pred.shape} and {meas.shape}")
    if not np.all(meas > 0):
        raise ValueError("fidelity: measured latencies must be > 0")
    rel = np.abs(pred - meas) / meas
    tau = kendalltau(pred, meas).statistic
    rho = spearmanr(pred, meas).statistic
    return {"mape": float(rel.mean()), "within_5pct": float(np.mean(rel <= 0.05)),
            "within_10pct": float(np.mean(rel <= 0.10)),
            "kendall_tau": float(tau) if np.isfinite(tau) else 0.0,
            "spearman_rho": float(rho) if np.isfinite(rho) else 0.0}


def measure_archs(space: MnasNetSpace, archs: Sequence[ArchSpec], profiler: ProfilerLike, *,
                  group: int = 8, on_group: Callable[[int], None] | None = None
                  ) -> list[Any]:
    """End-to-end `Measurement`s, timed round-robin in groups of `group` architectures."""
    out: list[Any] = []
    for start in range(0, len(archs), group):
        graphs = [arch_onnx(space, a) for a in archs[start:start + group]]
        out.extend(profiler.measure_many(graphs))
        if on_group is not None:
            on_group(len(graphs))
    return out


def measure_sweeps(space: MnasNetSpace, archs: Sequence[ArchSpec], profiler: ProfilerLike,
                   sweeps: int, on_group: Callable[[int], None] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`sweeps` x len(archs) times and within-session spreads: every sweep times all `archs`
    (`measure_archs`) before the next starts, so one architecture's timings lie far apart."""
    timed = [measure_archs(space, archs, profiler, on_group=on_group) for _ in range(sweeps)]
    return (np.array([[m.ms for m in row] for row in timed]),
            np.array([[m.spread for m in row] for row in timed]))


def combine_sweeps(sweeps: np.ndarray, statistic: str) -> tuple[np.ndarray, np.ndarray]:
    """Per architecture, the sweeps' best time (`min` statistic: load only ever adds time) or
    their median, and their relative spread (CV across sweeps; 0 with one sweep)."""
    sweeps = np.atleast_2d(np.asarray(sweeps, dtype=float))
    ms = sweeps.min(axis=0) if statistic == "min" else np.median(sweeps, axis=0)
    if len(sweeps) < 2:
        return ms, np.zeros(sweeps.shape[1])
    return ms, sweeps.std(axis=0, ddof=1) / sweeps.mean(axis=0)


def sweep_agreement(sweeps: np.ndarray) -> dict[str, float] | None:
    """How well single sweeps agree with each other (median over pairs of each metric): the
    repeatability of one timing on this machine, the floor under every predictor's error."""
    if len(sweeps) < 2:
        return None
    pairs = [fidelity(sweeps[j], sweeps[i]) for i in range(len(sweeps))
             for j in range(i + 1, len(sweeps))]
    return {k: float(np.median([p[k] for p in pairs])) for k in METRICS}


def canary_ms(table: LatencyTable) -> float | None:
    """The canary network's time during the build (median of its timings), or None."""
    then = [c["ms"] for c in table.canary if c.get("ms")]
    return float(np.median(then)) if then else None


def canary_ratio(space: MnasNetSpace, table: LatencyTable, profiler: ProfilerLike) -> float | None:
    """The fixed canary network now vs during the build (> 1: the machine is slower now);
    None when the table was built without a canary."""
    then = canary_ms(table)
    if then is None:
        return None
    return float(profiler.measure(canary_onnx(space)).ms / then)


def measured_here(table: LatencyTable) -> bool:
    """Whether this machine timed the table (same CPU and onnxruntime, not a device bundle):
    only then does its canary, re-timed here, say how the machine's speed changed."""
    from .profiler import cpu_model, onnxruntime_version

    prov = table.provenance
    return (prov.get("cpu") == cpu_model() and prov.get("onnxruntime") == onnxruntime_version()
            and "bundle_id" not in prov)


def reanchor(space: MnasNetSpace, table: LatencyTable, profiler: ProfilerLike
             ) -> dict[str, Any] | None:
    """Re-time the table's canary now (about a second) with `profiler` (the table's profiler
    settings): the factor to scale predictions by (canary now / at build), or None without a
    canary."""
    started = time.time()
    ratio, then = canary_ratio(space, table, profiler), canary_ms(table)
    if ratio is None or then is None:  # both None without a canary
        return None
    return {"factor": ratio, "canary_ms_build": then, "canary_ms_now": ratio * then,
            "seconds": round(time.time() - started, 1)}


def score_interleaved(space: MnasNetSpace, table: LatencyTable, lut: Any = None,
                      flops: Any = None) -> dict[str, Any] | None:
    """`lut` and `flops` scored on the validation architectures the build timed interleaved with
    its entries and calibration samples (same minutes, same machine state; never fitted on);
    None when the table has none (`latency.build.validation_samples`). `lut`/`flops`: the
    table's predictors, when the caller has them already."""
    if len(table.validation) < 2:
        return None
    lut = lut or LutPredictor(space, table)
    flops = flops or FlopsPredictor(space, table)
    archs = [space.decode(s["actions"]) for s in table.validation]
    measured = [s["ms"] for s in table.validation]
    return {"samples": len(archs),
            "measurement_cv": float(np.median([s["spread"] for s in table.validation])),
            "lut": dict(fidelity(lut.predict_many(archs), measured), calibration=lut.calibration),
            "flops": fidelity(flops.predict_many(archs), measured)}


def validate(space: MnasNetSpace, table: LatencyTable, profiler: ProfilerLike, samples: int, *,
             seed: int = VALIDATION_SEED, sweeps: int = 2, progress: bool = False
             ) -> dict[str, Any]:
    """Measure `samples` fresh architectures end to end and score `lut` and `flops` on them.

    Every architecture is timed in `sweeps` separate sweeps over all of them (minutes apart on a
    large sample, so one burst of load from elsewhere hits one timing of each) and keeps the
    best (`min` statistic) or the median, as the table build does with its passes."""
    if not isinstance(sweeps, int) or isinstance(sweeps, bool) or sweeps < 1:
        raise ValueError(f"--sweeps: expected an integer >= 1, got {sweeps!r}")
    lut = LutPredictor(space, table)
    flops = FlopsPredictor(space, table)
    actions = validation_actions(space, samples, seed, [s["actions"] for s in table.samples])
    archs = [space.decode(a) for a in actions]
    started = time.time()
    ratio_before = canary_ratio(space, table, profiler)
    with progress_bar(sweeps * len(archs), desc="validate", unit="arch", enabled=progress) as bar:
        timed_arr, spreads_in = measure_sweeps(space, archs, profiler, sweeps, bar.update)
    ratio_after = canary_ratio(space, table, profiler)
    statistic = getattr(getattr(profiler, "config", None), "statistic", "median")
    measured, spreads = combine_sweeps(timed_arr, statistic)
    if sweeps == 1:
        spreads = spreads_in[0]  # rounds within one session: all there is
    lut_ms, flops_ms = lut.predict_many(archs), flops.predict_many(archs)
    # the canary before and after the sweeps: the machine's speed during them against the build
    factor = float(np.sqrt(ratio_before * ratio_after)) if ratio_before and ratio_after else None
    anchored = lut_ms * factor if factor else lut_ms
    return {
        "samples": len(archs), "seed": seed, "sweeps": sweeps, "sweep_statistic":
        "min" if statistic == "min" else "median",
        "measurement_cv": float(np.median(spreads)),
        "measurement_cv_p90": float(np.percentile(spreads, 90)),
        "measured_ms": {"median": float(np.median(measured)), "min": float(measured.min()),
                        "max": float(measured.max())},
        "canary_ratio": ratio_before, "canary_ratio_after": ratio_after, "reanchor_factor": factor,
        "lut": dict(fidelity(lut_ms, measured), calibration=lut.calibration),
        "lut_reanchored": dict(fidelity(anchored, measured), calibration=lut.calibration)
        if factor else None,
        "flops": fidelity(flops_ms, measured),
        "sweep_vs_sweep": sweep_agreement(timed_arr),
        "measure_seconds": round(time.time() - started, 1),
        "interleaved": score_interleaved(space, table, lut, flops),
        "per_arch": {"actions": actions, "measured_ms": measured.tolist(),
                     "spread": spreads.tolist(), "sweeps_ms": timed_arr.T.tolist(),
                     "lut_ms": lut_ms.tolist(), "lut_reanchored_ms": anchored.tolist(),
                     "flops_ms": flops_ms.tolist()},
    }


def format_report(result: dict[str, Any]) -> str:
    """lut and flops side by side, with the measurement's own spread."""
    anchored = result.get("lut_reanchored")
    cols = [("lut", result["lut"])] + ([("lut re-anchored", anchored)] if anchored else []) + \
        [("flops", result["flops"])]
    rows = [tuple(["metric"] + [name for name, _ in cols])]
    for key in METRICS:
        fmt = "{:.1%}" if key != "kendall_tau" and key != "spearman_rho" else "{:.3f}"
        rows.append(tuple([key] + [fmt.format(m[key]) for _, m in cols]))
    widths = [max(len(r[c]) for r in rows) for c in range(len(cols) + 1)]
    lines = ["  ".join(cell.rjust(w) if c else cell.ljust(w) for c, (cell, w) in
                       enumerate(zip(r, widths))) for r in rows]
    sweeps = result.get("sweeps", 1)
    what = f"CV across {sweeps} sweeps" if sweeps > 1 else "CV of per-round statistics"
    keep = "best" if result.get("sweep_statistic") == "min" else "median"
    lines.append(f"{result['samples']} architectures measured end to end, the {keep} of {sweeps} "
                 f"sweep(s) (median {result['measured_ms']['median']:.3f} ms); measurement "
                 f"spread ({what}) median {result['measurement_cv']:.1%}, p90 "
                 f"{result['measurement_cv_p90']:.1%}; lut calibration "
                 f"{result['lut']['calibration']}")
    agree = result.get("sweep_vs_sweep")
    if agree:
        lines.append(f"the measurement against itself (one sweep vs another): within 10% "
                     f"{agree['within_10pct']:.0%}, Kendall tau {agree['kendall_tau']:.3f}")
    inter = result.get("interleaved")
    if inter:
        lut = inter["lut"]
        lines.append(f"timed interleaved with the build ({inter['samples']} architectures): lut "
                     f"MAPE {lut['mape']:.1%}, within 10% {lut['within_10pct']:.0%}, Kendall tau "
                     f"{lut['kendall_tau']:.3f}; flops tau {inter['flops']['kendall_tau']:.3f}")
    if result.get("reanchor_factor"):
        lines.append(f"canary now / at build: {result['canary_ratio']:.3f} before the sweeps, "
                     f"{result['canary_ratio_after']:.3f} after; 're-anchored' scales the lut's "
                     f"predictions by their geometric mean {result['reanchor_factor']:.3f} "
                     "(machine speed drift: shifts MAPE, not the rank metrics)")
    return "\n".join(lines)
