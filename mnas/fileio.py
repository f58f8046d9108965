"""Atomic file writes: a reader (or a resume after a kill) sees the old file or the new one,
never a torn one."""
from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block ends, then deliver the first one to the
    handler that was in place. Why: an interrupt in the middle of a write otherwise surfaces as
    the writer's own error (torch.save's zip writer raises RuntimeError), which replaces the
    KeyboardInterrupt and ends a search with a traceback. A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[signal.Signals, Any]] = []

    def hold(signum: int, frame: Any) -> None:
        caught.append((signal.Signals(signum), frame))

    previous = {sig: signal.signal(sig, hold) for sig in _HELD_SIGNALS
                if signal.getsignal(sig) is not None}  # None: set outside Python, left alone
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signum, frame = caught[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to a temp file beside `path`, then `os.replace` it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int = 1) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """torch.save to a temp file beside `path`, fsync, then `os.replace`: never a torn file, no
    temp file left by a failed write, and a Ctrl-C lands after the write (`interrupts_deferred`)."""
    import torch

    path = Path(path)
    with interrupts_deferred():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=f"{path.suffix}.tmp",
                                   dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(obj, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return path


def read_torch_file(path: str | os.PathLike[str], what: str) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; a file torch cannot read (truncated,
    not a checkpoint, holding more than tensors and plain data) is one ValueError naming the file
    and `what` it should be. torch's own advice to retry with weights_only=False is left out on
    purpose: that would run code from the file."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for a bad file
        raise ValueError(f"{path}: cannot read the {what} ({_torch_reason(exc)})") from None


def _torch_reason(exc: BaseException) -> str:
    """The first informative line of a torch.load error, without the weights_only advice."""
    text = str(exc)
    if "weights_only" in text or "Weights only" in text:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", text)
        if found:
            return f"it holds {found.group(1)}, and only tensors and plain data are loaded"
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("WeightsUnpickler error:"):
                return line.split(". ")[0].rstrip(".")
        return "it holds more than tensors and plain data, which is never loaded"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
