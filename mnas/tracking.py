"""What a search shows while and after it runs: TensorBoard events and `pareto.png`.

The only module that imports tensorboard (through torch's SummaryWriter) and matplotlib (Agg, so
it works on headless machines); both are imported when a tracker is created, never by the core.
Logged per child: reward, accuracy, latency, best reward so far; per controller update: its
statistics (entropy, loss, ...) and one histogram of the chosen options per decision; at the end:
the hyper-parameters with the best reward (TensorBoard's HParams tab).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnas.search.history import HistoryRecord
from mnas.search.ranking import best, candidates, pareto_front
from mnas.search.rundir import RunDir


class Tracker:
    """TensorBoard logging (optional) and the Pareto plot written by `close` (optional)."""

    def __init__(self, run_dir: str | Path, *, decisions: Sequence[Any], target_ms: float,
                 tensorboard: bool = True, plot: bool = True,
                 references: Sequence[tuple[str, float]] = (),
                 hparams: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.decisions = list(decisions)
        self.target_ms = target_ms
        self.plot = plot
        self.references = list(references)
        self.hparams = dict(hparams or {})
        self._best = -np.inf
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            _quiet_writer_thread_errors()
            self._writer = SummaryWriter(str(RunDir(self.run_dir).tensorboard))

    def seed(self, records: Sequence[HistoryRecord]) -> None:
        """Continue best-so-far from the children a resumed run already has."""
        top = best(candidates(records))
        self._best = top.reward if top is not None else -np.inf

    def log_child(self, record: HistoryRecord, step: int) -> None:
        if self._writer is None:
            return
        for c in candidates([record]):
            self._best = max(self._best, c.reward)
        w = self._writer
        for tag, value in (("child/reward", record.reward), ("child/accuracy", record.accuracy),
                           ("child/latency_ms", record.latency_ms)):
            if value is not None:
                w.add_scalar(tag, float(value), step)
        if np.isfinite(self._best):
            w.add_scalar("search/best_reward", self._best, step)

    def log_update(self, stats: dict[str, Any], actions: Sequence[Sequence[int]],
                   update: int) -> None:
        if self._writer is None:
            return
        for key, value in stats.items():
            if isinstance(value, (int, float)) and np.isfinite(value):
                self._writer.add_scalar(f"controller/{key}", float(value), update)
        chosen = np.asarray(actions, dtype=np.int64)
        for i, decision in enumerate(self.decisions):
            bins = np.arange(decision.size + 1) - 0.5
            self._writer.add_histogram(f"choices/{decision.name}", chosen[:, i], update, bins=bins)

    def close(self, records: Sequence[HistoryRecord]) -> None:
        if self._writer is not None:
            top = best(candidates(records))
            if top is not None:
                metrics = {"hparam/best_reward": top.reward, "hparam/best_accuracy": top.accuracy,
                           "hparam/best_latency_ms": top.latency_ms}
                self._writer.add_hparams(_flat_hparams(self.hparams), metrics, run_name=".")
            self._writer.close()
            self._writer = None
        if self.plot and records:
            plot_pareto(records, RunDir(self.run_dir).plot, target_ms=self.target_ms,
                        references=self.references)


def _quiet_writer_thread_errors() -> None:
    """Drop the traceback TensorBoard's writer thread prints when its write fails (disk full):
    the same OSError reaches the search at its next TensorBoard call, which reports it in one
    line; the thread's copy would print a traceback under that line."""
    previous = threading.excepthook
    if getattr(previous, "mnas_quiet", False):
        return

    def hook(args: Any) -> None:
        if isinstance(args.exc_value, OSError) \
                and type(args.thread).__module__.startswith("tensorboard."):
            return
        previous(args)

    vars(hook)["mnas_quiet"] = True  # the marker checked above (no such attribute in its type)
    threading.excepthook = hook


def _flat_hparams(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_hparams(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif value is None:
            out[name] = "null"
    return out


def plot_pareto(records: Sequence[HistoryRecord], path: str | Path, *, target_ms: float,
                references: Sequence[tuple[str, float]] = ()) -> Path | None:
    """Accuracy vs predicted latency of the successful children, their Pareto front, the
    target latency and reference architectures (vertical markers: their accuracy on this proxy
    task is not measured). Written atomically; None when no child succeeded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = candidates(r for r in records if not r.cached)
    top = best(ok)
    if top is None:
        return None
    pts = np.array([[c.latency_ms, c.accuracy] for c in ok], dtype=float)
    front = np.array([[c.latency_ms, c.accuracy] for c in pareto_front(ok)], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.scatter(pts[:, 0], pts[:, 1], s=14, alpha=0.5, label=f"children ({len(ok)})")
    ax.step(front[:, 0], front[:, 1], where="post", color="C1", lw=1.5, label="Pareto front")
    ax.scatter([top.latency_ms], [top.accuracy], marker="*", s=160, color="C3",
               zorder=3, label=f"best reward {top.reward:.4f}")
    ax.axvline(target_ms, color="k", ls="--", lw=1, label=f"target {target_ms:g} ms")
    lo, hi = pts[:, 0].min(), pts[:, 0].max()
    off_scale = []
    for i, (name, latency) in enumerate(references):
        if lo / 3 <= latency <= hi * 3:  # far-off references would flatten the plot
            ax.axvline(latency, color=f"C{4 + i}", ls=":", lw=1.2, label=f"{name} (latency)")
        else:
            off_scale.append(f"{name} {latency:.3g} ms")
    if off_scale:
        ax.set_title("off scale: " + ", ".join(off_scale), fontsize=8)
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("proxy validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save_figure(fig, path)


def plot_baselines(models: Sequence[dict[str, Any]], path: str | Path, *, title: str = ""
                   ) -> Path:
    """Measured latency vs multiply-adds of the reference models (`mnas baselines`), one line
    per family through its widths (log-log): how far multiply-adds predict speed here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    families: dict[str, list[dict[str, Any]]] = {}
    for m in models:
        families.setdefault(m["family"], []).append(m)
    for i, (family, rows) in enumerate(sorted(families.items())):
        rows = sorted(rows, key=lambda r: r["macs"])
        x = [r["macs"] / 1e6 for r in rows]
        y = [r["latency_ms"] for r in rows]
        ax.plot(x, y, marker="o", ms=4, lw=1.3, color=f"C{i % 10}", label=family)
        for r, xi, yi in zip(rows, x, y):
            if len(rows) > 1:
                ax.annotate(f"{r['width']:g}", (xi, yi), fontsize=6, xytext=(3, 2),
                            textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("multiply-adds (millions)")
    ax.set_ylabel("measured latency (ms)")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left")
    return _save_figure(fig, path)


def _save_figure(fig: Any, path: str | Path) -> Path:
    """Write `fig` atomically (temp file, then rename) and close it: a reader never sees half
    a PNG."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
