"""Summaries of yardstick runs: regret quartiles per budget, tests against random, targets, plot."""
from __future__ import annotations

from typing import Any

import numpy as np

#: The issue's targets are stated for the RNN controller at these settings (hard reward).
TARGET_BUDGET = 500
BEAT_FROM = 200
ALPHA = 0.05


def picks(trace: Any, budgets: list[int]) -> list[list[float]]:
    """Per budget the [true reward, accuracy, latency] of the architecture a user would pick."""
    out = []
    for b in budgets:
        if len(trace.reward) >= b:
            i = trace.best_at(b)
            out.append([float(trace.reward[i]), float(trace.accuracy[i]), float(trace.latency[i])])
    return out


def summarize(runs: dict[str, list[list[list[float]]]], budgets: list[int],
              reference: float) -> dict[str, Any]:
    """Per controller and budget: regret quartiles against `reference` (the exact optimum, or the
    best reward any run found when no optimum is known), the best found architecture's accuracy
    and latency (medians), and a one-sided Mann-Whitney U test of "regret below random's".
    `runs[name][seed][k]` is `picks(...)[k]` for budget `budgets[k]`."""
    from scipy.stats import mannwhitneyu

    out: dict[str, Any] = {}
    regrets: dict[str, dict[int, np.ndarray]] = {}
    for name, seeds in runs.items():
        rows: dict[str, Any] = {}
        regrets[name] = {}
        for k, b in enumerate(budgets):
            chosen = [seed[k] for seed in seeds if len(seed) > k]
            if not chosen:
                continue
            reward, acc, lat = (np.asarray(x) for x in zip(*chosen))
            regret = reference - reward
            regrets[name][b] = regret
            q25, q50, q75 = np.percentile(regret, [25, 50, 75])
            rows[str(b)] = {"regret_median": float(q50), "regret_q25": float(q25),
                            "regret_q75": float(q75), "regret_mean": float(regret.mean()),
                            "found_optimum": int((regret <= 1e-9).sum()),
                            "best_accuracy_median": float(np.median(acc)),
                            "best_latency_ms_median": float(np.median(lat)),
                            "seeds": int(len(regret))}
        out[name] = rows
    for name, rows in out.items():
        if name == "random" or "random" not in regrets:
            continue
        for budget, row in rows.items():
            base = regrets["random"].get(int(budget))
            mine = regrets[name][int(budget)]
            if base is None or np.ptp(np.concatenate([mine, base])) == 0:
                row["p_less_than_random"] = 1.0 if base is not None else None
                continue
            row["p_less_than_random"] = float(mannwhitneyu(mine, base, alternative="less").pvalue)
    return out


def targets_nb201(summary: dict[str, Any], controller: str) -> dict[str, Any]:
    """The issue's NAS-Bench-201 targets for `controller` in one setting."""
    mine, rand, tpe = summary[controller], summary["random"], summary.get("tpe", {})
    at = str(TARGET_BUDGET)
    if at not in mine or at not in rand:
        return {"note": f"not run at {TARGET_BUDGET} samples"}
    ratio = mine[at]["regret_median"] / rand[at]["regret_median"] \
        if rand[at]["regret_median"] > 0 else float("inf")
    beats = {b: row.get("p_less_than_random", 1.0) < ALPHA
             for b, row in mine.items() if int(b) >= BEAT_FROM}
    vs_tpe = {b: mine[b]["regret_median"] <= tpe[b]["regret_median"] + 1e-9
              for b in tpe if b in mine}
    return {"median_regret_500": mine[at]["regret_median"],
            "random_median_regret_500": rand[at]["regret_median"],
            "ratio_to_random_500": ratio, "third_of_random": bool(ratio <= 1 / 3),
            "beats_random_p<0.05": beats, "beats_random_every_budget>=200": all(beats.values()),
            "at_least_tpe": vs_tpe, "at_least_tpe_every_budget": bool(vs_tpe) and all(
                vs_tpe.values())}


#: The issue's OFA target: predicted ImageNet top-1 (%) within this many samples.
OFA_ACCURACY, OFA_BUDGET = 81.7, 10000


def targets_ofa(summary: dict[str, Any], controller: str) -> dict[str, Any]:
    """The issue's OFA Note10 targets for `controller`: the median best found accuracy reaches
    OFA_ACCURACY within OFA_BUDGET samples (under the target latency), and its median regret is
    at most TPE's at every budget TPE ran."""
    mine, tpe = summary[controller], summary.get("tpe", {})
    at = str(OFA_BUDGET)
    if at not in mine:
        return {"note": f"not run at {OFA_BUDGET} samples"}
    vs_tpe = {b: mine[b]["regret_median"] <= tpe[b]["regret_median"] + 1e-9
              for b in tpe if b in mine}
    accuracy = mine[at]["best_accuracy_median"]
    return {"best_accuracy_median_10000": accuracy,
            "best_latency_ms_median_10000": mine[at]["best_latency_ms_median"],
            f"reaches_{OFA_ACCURACY}": bool(accuracy >= OFA_ACCURACY),
            "at_least_tpe": vs_tpe,
            "at_least_tpe_every_budget": bool(vs_tpe) and all(vs_tpe.values())}


def print_table(task_name: str, summary: dict[str, Any], budgets: list[int]) -> None:
    print(f"\n{task_name}: median regret [q25-q75] (reward points); * = below random, "
          f"one-sided Mann-Whitney p < {ALPHA}")
    print(f"{'controller':20s}" + "".join(f"{b:>18d}" for b in budgets))
    for name, rows in summary.items():
        cells = []
        for b in budgets:
            row = rows.get(str(b))
            if row is None:
                cells.append(f"{'-':>18s}")
                continue
            star = "*" if row.get("p_less_than_random", 1.0) < ALPHA else " "
            cell = "%.2f [%.2f-%.2f]%s" % (row["regret_median"], row["regret_q25"],
                                           row["regret_q75"], star)
            cells.append(f"{cell:>18s}")
        print(f"{name:20s}" + "".join(cells))


def markdown_table(task_name: str, entry: dict[str, Any], budgets: list[int],
                   metric: str = "regret") -> str:
    """The summary as a Markdown table (for bench/README.md): median [q25-q75] regret (or, with
    metric "accuracy", the best found architecture's median accuracy); * marks p < ALPHA against
    random; the last column is the best found architecture's accuracy and latency (medians) at
    the largest budget each controller ran."""
    known = "optimum reward" if entry.get("optimum") is not None else "best known reward"
    lines = [f"{task_name} (T = {entry['target_ms']:.2f} ms, {known} "
             f"{entry['reference_reward']:.2f})", "",
             "| controller | " + " | ".join(str(b) for b in budgets) + " | best found |",
             "|---|" + "---|" * (len(budgets) + 1)]
    for name, rows in entry["summary"].items():
        cells = []
        for b in budgets:
            row = rows.get(str(b))
            if row is None:
                cells.append("–")
                continue
            star = "\\*" if row.get("p_less_than_random", 1.0) < ALPHA else ""
            if metric == "accuracy":
                cells.append(f"{row['best_accuracy_median']:.2f}{star}")
            else:
                cells.append(f"{row['regret_median']:.2f} [{row['regret_q25']:.2f}–"
                             f"{row['regret_q75']:.2f}]{star}")
        last = rows[max(rows, key=int)]
        cells.append(f"{last['best_accuracy_median']:.2f}% at "
                     f"{last['best_latency_ms_median']:.2f} ms")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Any) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = results["tasks"]
    cols = min(4, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.2 * cols, 7.0), 3.4 * rows + 0.6),
                             squeeze=False)
    names = sorted({c for task in tasks.values() for c in task["summary"]})
    colors = {c: f"C{i}" for i, c in enumerate(names)}  # one colour per controller everywhere
    for ax, (name, task) in zip(axes.flat, tasks.items()):
        for controller, budgets in task["summary"].items():
            xs = [int(b) for b in budgets]
            med = [budgets[b]["regret_median"] for b in budgets]
            lo = [budgets[b]["regret_q25"] for b in budgets]
            hi = [budgets[b]["regret_q75"] for b in budgets]
            line, = ax.plot(xs, med, marker="o", ms=3, label=controller,
                            color=colors[controller])
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.12)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("samples")
        ax.set_ylabel("regret" if task.get("optimum") is not None else "regret vs best known")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colors[c], marker="o", ms=3) for c in names]
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    counts = {row["seeds"] for task in tasks.values() for rows_ in task["summary"].values()
              for row in rows_.values()}
    seeds = f"{min(counts)}–{max(counts)}" if len(counts) > 1 else f"{counts.pop()}"
    noise = results["config"].get("noise") or 0
    fig.suptitle(f"Yardstick: median regret (IQR shaded) vs samples, {seeds} seeds"
                 + (f", accuracy noise σ = {noise:g}" if noise else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
