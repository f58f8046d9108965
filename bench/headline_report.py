"""The headline benchmark's report: JSON, plot and printed table from the measured stages
(`bench/headline.py` calls `report`; nothing here measures anything)."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mnas.fileio import atomic_write_json


def best_so_far(rows: list[dict[str, Any]]) -> list[float]:
    """Best reward after each finished child (history order = finishing order)."""
    out, best = [], -np.inf
    for r in rows:
        best = max(best, float(r["reward"]))
        out.append(best)
    return out


def curves(histories: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per method: best-so-far reward per child count, median / min / max over seeds."""
    out = {}
    for method, runs in histories.items():
        arr = np.array([best_so_far(rows) for rows in runs if rows])
        n = arr.shape[1] if arr.size else 0
        out[method] = {"children": list(range(1, n + 1)),
                       "median": np.median(arr, 0).tolist() if n else [],
                       "min": arr.min(0).tolist() if n else [],
                       "max": arr.max(0).tolist() if n else [],
                       "final_per_seed": arr[:, -1].tolist() if n else []}
    return out


def model_rows(models: list[dict[str, Any]], final: list[dict[str, Any]],
               measured: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for m in models:
        runs = sorted((r for r in final if r["name"] == m["name"]), key=lambda r: r["seed"])
        accs = [r["accuracy"] for r in runs]
        lat = measured.get(m["name"], {})
        rows.append({**m, "accuracy_per_seed": accs,
                     "accuracy": float(np.mean(accs)) if accs else None,
                     "params": runs[0]["params"] if runs else None,
                     "macs": runs[0]["macs"] if runs else None,
                     "measured_ms": lat.get("ms"), "measured_cv": lat.get("cv"),
                     "lut_ms": lat.get("lut_ms"),
                     "train_s": float(np.mean([r["wall_time_s"] for r in runs])) if runs else None})
    return rows


def mobilenet_at(rows: list[dict[str, Any]], ms: float) -> float | None:
    """MobileNetV2's held-out accuracy at latency `ms`, linear between its measured widths;
    None outside their latency range (no extrapolation)."""
    pts = sorted((r["measured_ms"], r["accuracy"]) for r in rows
                 if r["name"].startswith("mobilenet_v2@") and r["accuracy"] is not None)
    if len(pts) < 2 or not pts[0][0] <= ms <= pts[-1][0]:
        return None
    xs, ys = zip(*pts)
    return float(np.interp(ms, xs, ys))


def comparisons(rows: list[dict[str, Any]], target: float) -> dict[str, Any]:
    searched = [r for r in rows if r["kind"] == "searched"]
    for r in searched:
        ref = mobilenet_at(rows, r["measured_ms"])
        r["mobilenet_v2_at_same_ms"] = ref
        r["delta_vs_mobilenet_v2"] = None if ref is None else r["accuracy"] - ref
    mb05 = next(r for r in rows if r["name"] == "mobilenet_v2@0.5")
    methods: dict[str, Any] = {}
    for method in sorted({r["method"] for r in searched}):
        mine = [r for r in searched if r["method"] == method]
        deltas = [r["delta_vs_mobilenet_v2"] for r in mine
                  if r["delta_vs_mobilenet_v2"] is not None]
        methods[method] = {
            "final_accuracy_mean": float(np.mean([r["accuracy"] for r in mine])),
            "final_accuracy_per_seed": [r["accuracy"] for r in mine],
            "measured_ms_per_seed": [r["measured_ms"] for r in mine],
            "within_target": sum(r["measured_ms"] <= target for r in mine),
            "beats_mobilenet_v2_x0.5_in_both_accuracy_and_latency": sum(
                r["accuracy"] > mb05["accuracy"] and r["measured_ms"] <= mb05["measured_ms"]
                for r in mine),
            "delta_vs_mobilenet_v2_median": float(np.median(deltas)) if deltas else None,
            "delta_vs_mobilenet_v2_range": [min(deltas), max(deltas)] if deltas else None,
            "seeds": len(mine)}
    return methods


def plot(rows: list[dict[str, Any]], curve: dict[str, Any], target: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    mb = sorted((r for r in rows if r["name"].startswith("mobilenet_v2@")),
                key=lambda r: r["measured_ms"])
    ax1.plot([r["measured_ms"] for r in mb], [r["accuracy"] for r in mb], "k.-",
             label="MobileNetV2 x0.35/0.5/0.75/1.0")
    for r in rows:
        if r["kind"] == "baseline" and not r["name"].startswith("mobilenet_v2@"):
            # MnasNets and the lightweight families at matched latency
            ax1.plot(r["measured_ms"], r["accuracy"], "ks", mfc="none")
            ax1.annotate(r["name"], (r["measured_ms"], r["accuracy"]), fontsize=7)
    markers = {"rnn": "o", "random": "^", "constrained_random": "v"}
    for method, mk in markers.items():
        pts = [r for r in rows if r.get("method") == method]
        if pts:
            ax1.plot([r["measured_ms"] for r in pts], [r["accuracy"] for r in pts], mk,
                     ls="none", label=f"searched: {method}")
    ax1.axvline(target, ls="--", c="gray", label=f"T = {target:.3f} ms")
    ax1.set(xlabel="measured latency (ms, onnxruntime, 1 thread, batch 1)",
            ylabel="held-out top-1 (mean of 2 training seeds)",
            title="CIFAR-10 32x32: accuracy vs measured latency")
    ax1.legend(fontsize=7)
    for method, c in curve.items():
        if c["children"]:
            ax2.plot(c["children"], c["median"], label=method)
            ax2.fill_between(c["children"], c["min"], c["max"], alpha=0.2)
    ax2.set(xlabel="children", ylabel="best reward so far (median, min-max over seeds)",
            title="search progress")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(args: Any, state: dict[str, Any], models: list[dict[str, Any]],
           final: list[dict[str, Any]], measured: dict[str, Any],
           histories: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    import torch
    target = float(state["target_ms"])
    rows = model_rows(models, final, measured)
    methods = comparisons(rows, target)
    curve = curves(histories)
    result = {
        "benchmark": "headline", "command": "python " + " ".join(sys.argv),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "target_ms": target, "target_spread": state.get("target_spread"),
        "wall_time_s": state.get("wall_s"),
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "load_avg": list(os.getloadavg())},
        "methods": methods, "curves": curve, "models": rows}
    out = atomic_write_json(args.out, result)
    plot(rows, curve, target, out.with_suffix(".png"))
    print(f"\nT = {target:.4f} ms (MobileNetV2 x0.5, measured)")
    print(f"{'model':24} {'acc':>7} {'seeds':>15} {'ms':>7} {'cv':>6} {'lut ms':>7} "
          f"{'MBv2@ms':>8} {'delta':>7}")
    for r in rows:
        ref, d = r.get("mobilenet_v2_at_same_ms"), r.get("delta_vs_mobilenet_v2")
        print(f"{r['name']:24} {r['accuracy']:7.4f} "
              f"{'/'.join(f'{a:.3f}' for a in r['accuracy_per_seed']):>15} "
              f"{r['measured_ms']:7.4f} {r['measured_cv']:6.1%} "
              f"{'-' if r['lut_ms'] is None else format(r['lut_ms'], '.4f'):>7} "
              f"{'-' if ref is None else format(ref, '.4f'):>8} "
              f"{'-' if d is None else format(d, '+.4f'):>7}")
    for method, m in methods.items():
        print(f"{method}: final acc mean {m['final_accuracy_mean']:.4f}, "
              f"median delta vs MobileNetV2 at equal latency {m['delta_vs_mobilenet_v2_median']}, "
              f"{m['within_target']}/{m['seeds']} within T, best reward per seed "
              f"{[round(x, 4) for x in curve[method]['final_per_seed']]}")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result
