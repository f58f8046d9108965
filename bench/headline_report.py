"""The headline benchmark's report: JSON, plot and printed table from the measured stages
(`bench/headline.py` calls `report`; nothing here measures anything).

The comparison per searched model: its final accuracy (mean of the training seeds) minus
MobileNetV2's at the same measured latency, linear between the measured widths of the MobileNetV2
sweep; a model faster or slower than the whole sweep gets no delta (`outside_sweep`), never an
extrapolated one. Per method (soft reward), the median over search seeds.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mnas.fileio import atomic_write_json

#: Accuracy columns: the held-out images, and the extra set (when there is one).
SPLITS = ("accuracy", "extra_accuracy")


def best_so_far(rewards: list[float | None]) -> list[float]:
    """Best reward after each finished child (history order = finishing order); a child without
    a reward does not move it."""
    out, top = [], -np.inf
    for r in rewards:
        if r is not None:
            top = max(top, float(r))
        out.append(top)
    return out


def median(values: list[Any]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.median(kept)) if kept else None


def curves(runs: list[tuple[str, int, str]],
           rewards: dict[str, list[float | None]]) -> dict[str, Any]:
    """Per method (soft reward): best-so-far reward per child count, median / min / max over
    seeds (to the shortest search)."""
    from headline_models import search_name
    out = {}
    for method in dict.fromkeys(m for m, _, p in runs if p == "soft"):
        seqs = [best_so_far(rewards[search_name(m, s, p)]) for m, s, p in runs
                if m == method and p == "soft"]
        n = min((len(q) for q in seqs), default=0)
        arr = np.array([q[:n] for q in seqs])
        out[method] = {"children": list(range(1, n + 1)),
                       "median": np.median(arr, 0).tolist() if n else [],
                       "min": arr.min(0).tolist() if n else [],
                       "max": arr.max(0).tolist() if n else [],
                       "final_per_seed": arr[:, -1].tolist() if n else []}
    return out


def model_rows(models: list[dict[str, Any]], final: list[dict[str, Any]],
               measured: dict[str, Any]) -> list[dict[str, Any]]:
    """Every model with its accuracies (mean over training seeds, and per seed) and latency."""
    rows = []
    for m in models:
        runs = sorted((r for r in final if r["name"] == m["name"]), key=lambda r: r["seed"])
        lat = measured.get(m["name"], {})
        row = {**m, "measured_ms": lat.get("ms"), "measured_cv": lat.get("cv"),
               "lut_ms": lat.get("lut_ms"), "params": runs[0]["params"] if runs else None,
               "macs": runs[0]["macs"] if runs else None,
               "train_s": float(np.mean([r["wall_time_s"] for r in runs])) if runs else None,
               "saved": [r.get("saved") for r in runs]}
        for key in SPLITS:
            accs = [r.get(key) for r in runs]
            row[f"{key}_per_seed"] = accs
            known = [float(a) for a in accs if a is not None]
            row[key] = float(np.mean(known)) if known and len(known) == len(accs) else None
        rows.append(row)
    return rows


def mobilenet_at(rows: list[dict[str, Any]], ms: float | None,
                 key: str = "accuracy") -> float | None:
    """MobileNetV2's accuracy (`key`) at latency `ms`, linear between its measured widths; None
    outside their latency range (no extrapolation) or without two measured widths."""
    pts = sorted((r["measured_ms"], r[key]) for r in rows
                 if r["name"].startswith("mobilenet_v2@") and r.get(key) is not None
                 and r["measured_ms"] is not None)
    if ms is None or len(pts) < 2 or not pts[0][0] <= ms <= pts[-1][0]:
        return None
    xs, ys = zip(*pts)
    return float(np.interp(ms, xs, ys))


def add_deltas(rows: list[dict[str, Any]]) -> None:
    """Each searched model's delta against MobileNetV2 at its measured latency, per split."""
    for r in rows:
        if r["kind"] != "searched":
            continue
        for key in SPLITS:
            ref = mobilenet_at(rows, r["measured_ms"], key)
            r[f"mobilenet_v2_{key}_at_same_ms"] = ref
            r[f"delta_{key}"] = None if ref is None or r[key] is None else r[key] - ref
        r["outside_sweep"] = mobilenet_at(rows, r["measured_ms"]) is None


def methods_summary(rows: list[dict[str, Any]], curve: dict[str, Any],
                    target: float) -> dict[str, Any]:
    """Per method, soft-reward searches only: medians over search seeds."""
    out: dict[str, Any] = {}
    for method, c in curve.items():
        mine = [r for r in rows if r.get("method") == method and r["preset"] == "soft"]
        out[method] = {
            "seeds": len(mine),
            "best_reward_median": median(c["final_per_seed"]),
            "best_reward_per_seed": c["final_per_seed"],
            "measured_ms_per_seed": [r["measured_ms"] for r in mine],
            "within_target": sum(r["measured_ms"] is not None and r["measured_ms"] <= target
                                 for r in mine),
            "outside_sweep": sum(bool(r.get("outside_sweep")) for r in mine)}
        for key in SPLITS:
            out[method][f"{key}_median"] = median([r[key] for r in mine])
            out[method][f"{key}_per_seed"] = [r[key] for r in mine]
            deltas = [r[f"delta_{key}"] for r in mine]
            out[method][f"delta_{key}_median"] = median(deltas)
            out[method][f"delta_{key}_per_seed"] = deltas
    return out


def head_to_head(methods: dict[str, Any], a: str = "rnn",
                 b: str = "constrained_random") -> dict[str, Any] | None:
    """`a` minus `b` on the same budget: median best-found reward and final accuracies."""
    if a not in methods or b not in methods:
        return None
    out: dict[str, Any] = {"a": a, "b": b}
    for key in ("best_reward_median",) + tuple(f"{k}_median" for k in SPLITS):
        x, y = methods[a][key], methods[b][key]
        out[key] = None if x is None or y is None else x - y
    return out


def search_speed(runs: list[tuple[str, int, str]], rewards: dict[str, list[float | None]],
                 spent: dict[str, float]) -> dict[str, Any]:
    """Children scored per hour of search wall time (Ray start-up and the lut build included)."""
    from headline_models import search_name
    out = {}
    for run in runs:
        name = search_name(*run)
        n, s = len(rewards.get(name, [])), spent.get(name)
        out[name] = {"children": n, "wall_s": s,
                     "children_per_hour": n / s * 3600 if s else None}
    return out


def _plot_accuracy(ax: Any, rows: list[dict[str, Any]], target: float) -> None:
    mb = sorted((r for r in rows if r["name"].startswith("mobilenet_v2@")
                 and r["measured_ms"] is not None), key=lambda r: r["measured_ms"])
    ax.plot([r["measured_ms"] for r in mb], [r["accuracy"] for r in mb], "k.-",
            label="MobileNetV2 x0.35/0.5/0.75/1.0")
    for r in rows:
        if r["kind"] == "baseline" and not r["name"].startswith("mobilenet_v2@"):
            ax.plot(r["measured_ms"], r["accuracy"], "ks", mfc="none")
            ax.annotate(r["name"], (r["measured_ms"], r["accuracy"]), fontsize=7)
    markers = {"rnn": "o", "constrained_random": "v", "random": "^", "evolution": "D"}
    for method, mk in markers.items():
        for preset, fill in (("soft", None), ("hard", "none")):
            pts = [r for r in rows if r.get("method") == method and r["preset"] == preset]
            if pts:
                ax.plot([r["measured_ms"] for r in pts], [r["accuracy"] for r in pts], mk,
                        mfc=fill, ls="none", label=f"searched: {method} ({preset})")
    ax.axvline(target, ls="--", c="gray", label=f"T = {target:.3f} ms")
    ax.set(xlabel="measured latency (ms, onnxruntime, 1 thread, batch 1)",
           ylabel="held-out top-1 (mean of the training seeds)",
           title="CIFAR-10 32x32: accuracy vs measured latency")
    ax.legend(fontsize=7)


def plot(rows: list[dict[str, Any]], curve: dict[str, Any], target: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    _plot_accuracy(ax1, rows, target)
    for method, c in curve.items():
        if c["children"]:
            ax2.plot(c["children"], c["median"], label=method)
            ax2.fill_between(c["children"], c["min"], c["max"], alpha=0.2)
    ax2.set(xlabel="children", ylabel="best reward so far (median, min-max over seeds)",
            title="search progress (soft reward, supernet-scored children)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]], methods: dict[str, Any], duel: dict[str, Any] | None,
                speed: dict[str, Any], target: float) -> None:
    print(f"\nT = {target:.4f} ms (MobileNetV2 x0.5, measured)")
    print(f"{'model':28} {'held':>7} {'extra':>7} {'ms':>7} {'cv':>6} {'lut ms':>7} "
          f"{'d held':>7} {'d extra':>7}")
    for r in rows:
        mark = " (outside MBv2 sweep)" if r.get("outside_sweep") else ""
        print(f"{r['name']:28} {_fmt(r['accuracy'], '7.4f')} "
              f"{_fmt(r['extra_accuracy'], '7.4f'):>7} {_fmt(r['measured_ms'], '7.4f')} "
              f"{_fmt(r['measured_cv'], '6.1%')} {_fmt(r['lut_ms'], '7.4f'):>7} "
              f"{_fmt(r.get('delta_accuracy'), '+7.4f'):>7} "
              f"{_fmt(r.get('delta_extra_accuracy'), '+7.4f'):>7}{mark}")
    for method, m in methods.items():
        print(f"{method} (soft, {m['seeds']} seeds): median best reward "
              f"{_fmt(m['best_reward_median'], '.4f')}, median final acc held-out "
              f"{_fmt(m['accuracy_median'], '.4f')} / extra "
              f"{_fmt(m['extra_accuracy_median'], '.4f')}, median delta vs MobileNetV2 at equal "
              f"latency held-out {_fmt(m['delta_accuracy_median'], '+.4f')} / extra "
              f"{_fmt(m['delta_extra_accuracy_median'], '+.4f')}, {m['within_target']} within "
              f"T, {m['outside_sweep']} outside the MobileNetV2 sweep")
    if duel:
        print(f"{duel['a']} - {duel['b']}: best reward {_fmt(duel['best_reward_median'], '+.4f')}"
              f", final acc held-out {_fmt(duel['accuracy_median'], '+.4f')}, extra "
              f"{_fmt(duel['extra_accuracy_median'], '+.4f')} (medians)")
    for name, s in speed.items():
        print(f"search {name}: {s['children']} children in {_fmt(s['wall_s'], '.0f')} s = "
              f"{_fmt(s['children_per_hour'], '.0f')} children/h")


def report(args: Any, state: dict[str, Any], models: list[dict[str, Any]],
           final: list[dict[str, Any]], measured: dict[str, Any],
           runs: list[tuple[str, int, str]],
           rewards: dict[str, list[float | None]]) -> dict[str, Any]:
    import torch
    target = float(state["target_ms"])
    rows = model_rows(models, final, measured)
    add_deltas(rows)
    curve = curves(runs, rewards)
    methods = methods_summary(rows, curve, target)
    duel = head_to_head(methods)
    speed = search_speed(runs, rewards, state.get("search_s", {}))
    train_rows = [r for r in final if r.get("train_images")]
    result = {
        "benchmark": "headline", "command": "python " + " ".join(sys.argv),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "target_ms": target, "target_spread": state.get("target_spread"),
        "wall_time_s": state.get("wall_s"), "stage_s": state.get("stage_s", {}),
        "data": {"train_images": train_rows[0]["train_images"] if train_rows else None,
                 "heldout_images": train_rows[0]["heldout_images"] if train_rows else None,
                 "extra_images": train_rows[0]["extra_images"] if train_rows else None,
                 "carve_extra": state.get("carve_extra")},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "load_avg": list(os.getloadavg())},
        "methods": methods, "rnn_vs_constrained_random": duel,
        "hard_reward": [r for r in rows if r.get("preset") == "hard"],
        "search_speed": speed, "curves": curve, "models": rows}
    out = atomic_write_json(args.out, result)
    plot(rows, curve, target, out.with_suffix(".png"))
    print_table(rows, methods, duel, speed, target)
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result
