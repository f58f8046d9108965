"""The search's progress line: children done/total, running, best reward so far, ETA (tqdm)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnas.search.ranking import Candidate


class Progress:
    """A tqdm bar over recorded children; ETA comes from tqdm's rate over this session."""

    def __init__(self, total: int, done: int, *, enabled: bool = True) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, desc="children", unit="child",
                             file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
        self._done = done

    def update(self, done: int, running: int, best: Candidate | None) -> None:
        if self._bar is None:
            return
        changed = done != self._done
        postfix = {"running": running}
        if best is not None:
            postfix["best"] = f"{best.reward:.4f}"
            postfix["acc"] = f"{best.accuracy:.3f}"
            postfix["lat"] = f"{best.latency_ms:.2f}ms"
        self._bar.set_postfix(postfix, refresh=False)
        if changed:
            self._bar.update(done - self._done)  # refreshes (rate-limited by tqdm)
            self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def bar(total: int, desc: str, unit: str, *, enabled: bool = True) -> Any:
    """A tqdm bar on stderr for long work other than the search (decoding a data set): shown
    when `enabled` and stderr is a terminal, so logs and Ray workers stay clean."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=None if enabled else True, smoothing=0.1)
