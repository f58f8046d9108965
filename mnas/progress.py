"""Progress displays: one factory (`progress_bar`) for every bar in mnas and latency, and the
search's line (children done/total, running, best reward so far, ETA).

On a terminal a bar redraws in place. When stderr is not a terminal (a cluster job, `nohup`, CI,
a test capturing output) carriage-return redraws would pile up into one huge line, so each redraw
becomes a plain line instead, at most one every `LOG_INTERVAL_S` seconds, and the bar's final
state is always written when it closes."""
from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from mnas.search.ranking import Candidate

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL_S = 5.0
#: A bar without the bar, for log files: `latency table: 870/1924 (45%) [00:30<00:36, 29.0entry/s]`.
_LOG_FORMAT = ("{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) "
               "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LogLines:
    """A file for tqdm that turns each redraw (`\\r` + the bar) into a plain line, at most one
    every `interval` seconds; the latest state is written when the bar closes (its `\\n`)."""

    def __init__(self, stream: IO[str], interval: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream, self._interval, self._clock = stream, interval, clock
        self._pending: str | None = None
        self._last: str | None = None
        self._last_at = -float("inf")

    def write(self, text: str) -> int:
        if "\r" in text:
            line = text.rsplit("\r", 1)[1].rstrip()
            if line:
                self._pending = line
                if self._clock() - self._last_at >= self._interval:
                    self._emit()
        elif "\n" in text and not text.strip():
            self._emit()  # the bar closes: its final state
        elif text:
            self._stream.write(text)  # anything else (tqdm.write) as it is
        return len(text)

    def _emit(self) -> None:
        if self._pending is not None and self._pending != self._last:
            self._stream.write(self._pending + "\n")
            self._stream.flush()
            self._last, self._last_at = self._pending, self._clock()
        self._pending = None

    def flush(self) -> None:
        self._stream.flush()


def progress_bar(total: int, *, desc: str, unit: str, initial: int = 0, enabled: bool = True,
                 stream: IO[str] | None = None, **options: Any) -> Any:
    """A tqdm bar on stderr (or `stream`): redrawn in place on a terminal, else plain lines at
    most every `LOG_INTERVAL_S` seconds. `options` go to tqdm (e.g. `smoothing`)."""
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    if is_terminal(stream):
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream,
                    disable=not enabled, dynamic_ncols=True, **options)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                file=LogLines(stream), mininterval=LOG_INTERVAL_S, bar_format=_LOG_FORMAT,
                **options)


class Progress:
    """A tqdm bar over recorded children; ETA comes from tqdm's rate over this session."""

    def __init__(self, total: int, done: int, *, enabled: bool = True) -> None:
        self._bar = None
        if enabled:
            self._bar = progress_bar(total, initial=done, desc="children", unit="child",
                                     smoothing=0.1)
        self._done = done

    def update(self, done: int, running: int, best: Candidate | None) -> None:
        if self._bar is None:
            return
        changed = done != self._done
        postfix: dict[str, object] = {"running": running}
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
