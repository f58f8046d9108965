"""The search run directory: its layout (every file name, in one place) and the checks that keep
one directory to one search.

```
<run dir>/
  config.yaml      the resolved experiment config (every default spelled out)
  history.jsonl    one JSON record per finished child, append-only (authoritative)
  controller.pt    the controller checkpoint (atomic; weights_only)
  tb/              TensorBoard events (output.tensorboard)
  pareto.png       accuracy vs latency of the children (output.plot)
  .lock            held (flock) by the search running in it; holds its PID
```

Commands and library code name these files through `RunDir`, never by literal.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mnas.config.schema import ExperimentConfig, fingerprint_diff, load_config, save_config
from mnas.fileio import atomic_write_json

CONFIG_NAME = "config.yaml"
HISTORY_NAME = "history.jsonl"
CHECKPOINT_NAME = "controller.pt"
TB_DIR = "tb"
PLOT_NAME = "pareto.png"
LOCK_NAME = ".lock"
EVALUATOR_NAME = "evaluator.json"

#: A fresh or resumed search refuses to start with less free space than this in the run dir.
MIN_FREE_BYTES = 16 * 1024 ** 2


@dataclass(frozen=True)
class RunDir:
    """Paths inside one search run directory."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def history(self) -> Path:
        return self.path / HISTORY_NAME

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def tensorboard(self) -> Path:
        return self.path / TB_DIR

    @property
    def plot(self) -> Path:
        return self.path / PLOT_NAME

    @property
    def lock(self) -> Path:
        return self.path / LOCK_NAME


def default_run_dir(config: ExperimentConfig) -> Path:
    """`<output.dir>/<name>-<UTC timestamp>` (a new directory per run)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(config.output.dir) / f"{config.name}-{stamp}"


def check_run_dir(config: ExperimentConfig, run_dir: Path, *, resume: bool,
                  force: bool = False) -> None:
    """The run-dir checks of `prepare_run_dir`, without writing anything (cheap: run them before
    anything slow, such as building a latency table)."""
    layout = RunDir(run_dir)
    if resume:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run directory to resume")
        if not layout.config.exists():
            raise ValueError(f"{run_dir}: not a search run directory (no {CONFIG_NAME})")
        diff = fingerprint_diff(load_config(layout.config), config)
        if diff and not force:
            raise ValueError(f"{run_dir}: the config differs from the run's ({'; '.join(diff)}); "
                             f"use the run's {CONFIG_NAME}, or --force to resume anyway")
    else:
        if run_dir.exists() and not run_dir.is_dir():
            raise NotADirectoryError(f"{run_dir}: exists and is not a directory")
        if layout.history.exists():
            raise ValueError(f"{run_dir}: already holds a search; add --resume to continue it, "
                             "or choose another --run-dir")


def check_evaluator(run_dir: Path, identity: dict[str, Any] | None, *, resume: bool,
                    force: bool = False) -> None:
    """A resumed search must score with the evaluator it started with: the config cannot tell
    that a supernet checkpoint was retrained in place, which would mix two supernets' scores in
    one history. `identity` is the evaluator's own description (None: nothing to check)."""
    path = Path(run_dir) / EVALUATOR_NAME
    if not resume or force or identity is None or not path.is_file():
        return
    before = json.loads(path.read_text())
    changed = [k for k in sorted(identity) if before.get(k) != identity[k]]
    if changed:
        key = changed[0]
        raise ValueError(f"{path}: the evaluator changed since this run started ({key} "
                         f"{before.get(key)!r}, now {identity[key]!r}); resume with the same one, "
                         "or --force to mix their scores")


def save_evaluator(run_dir: Path, identity: dict[str, Any] | None) -> None:
    """Record the evaluator's identity for `check_evaluator` (after the run dir is prepared)."""
    if identity is not None:
        atomic_write_json(Path(run_dir) / EVALUATOR_NAME, identity)


def prepare_run_dir(config: ExperimentConfig, run_dir: Path, *, resume: bool,
                    force: bool = False) -> IO[str]:
    """Create or check the run dir, take its lock (`lock_run_dir`) and write the resolved
    config.yaml; returns the lock (give it to `release` at the end).

    A fresh search refuses a dir that already holds a history (that would mix two searches);
    a resume refuses a config that differs beyond `SEARCH_RESUME_MUTABLE` unless `force`; a dir
    that cannot be written, or a nearly full disk, is refused before any child trains, and a run
    dir this call created is removed again when it is refused."""
    check_run_dir(config, run_dir, resume=resume, force=force)
    saved = RunDir(run_dir).config
    created = not resume and not run_dir.exists()
    if not resume:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(f"{run_dir}: a parent exists and is not a directory") \
                from None
        except OSError as exc:
            raise ValueError(f"{run_dir}: cannot create the run directory "
                             f"({exc.strerror or exc})") from None
    lock = None
    try:
        lock = lock_run_dir(run_dir)
        check_run_dir(config, run_dir, resume=resume, force=force)  # again, under the lock
        check_writable(run_dir)
        try:
            save_config(config, saved)
        except OSError as exc:
            raise ValueError(f"{saved}: cannot write the run's config ({exc.strerror or exc})") \
                from None
    except BaseException:
        release(lock)
        if created:
            _remove_new_run_dir(run_dir)
        raise
    return lock


def _remove_new_run_dir(run_dir: Path) -> None:
    """Undo a run dir this process created and nothing was recorded in (a refused start)."""
    for path in (RunDir(run_dir).config, RunDir(run_dir).lock):
        try:
            path.unlink()
        except OSError:
            pass
    try:
        run_dir.rmdir()  # only if empty: never remove anything else
    except OSError:
        pass


# -- one search per run directory ------------------------------------------------------------------
# Two searches writing one history would record every index twice, so the second is refused with
# one line naming the holder's PID. `fcntl.flock` is released by the kernel when the holding
# process dies, however it dies, so a SIGKILLed run never blocks its own resume. A process forked
# by the search closes its inherited copy at once: the lock lives exactly as long as the search.
_HELD: list[IO[str]] = []


def lock_run_dir(run_dir: str | os.PathLike[str]) -> IO[str]:
    """Take the run dir's lock (non-blocking) and write our PID into it; ValueError naming the
    holder's PID when another process holds it. Keep the handle open for the run."""
    path = RunDir(run_dir).lock
    try:
        handle = open(path, "a+", encoding="utf-8")  # not "w": the holder's PID stays readable
    except OSError as exc:
        raise ValueError(f"{path}: cannot create the run directory's lock file "
                         f"({exc.strerror or exc})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ValueError(f"{run_dir}: another search is running in this run directory (pid "
                         f"{holder}); wait for it or stop it, then resume") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _HELD.append(handle)
    return handle


def release(handle: IO[str] | None) -> None:
    """Release a lock taken by `lock_run_dir` (the file stays: removing it would race)."""
    if handle is None:
        return
    if handle in _HELD:
        _HELD.remove(handle)
    if not handle.closed:
        handle.close()


def _close_inherited() -> None:
    """In a forked child: drop the copies of our lock descriptors (closing a copy does not
    unlock; the parent keeps the lock, and a child outliving a killed parent does not hold it)."""
    for handle in _HELD:
        try:  # point the descriptor at /dev/null: the file object may close it later
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, handle.fileno())
            os.close(null)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited)


def check_writable(run_dir: Path, min_free: int = MIN_FREE_BYTES) -> None:
    """ValueError before any child is trained when the run dir cannot take a history: not
    writable (permissions, read-only file system) or nearly full."""
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise ValueError(f"{run_dir}: run directory is not writable")
    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        return
    if free < min_free:
        raise ValueError(f"{run_dir}: only {free / 1024 ** 2:.1f} MiB free on this file system "
                         f"(a search needs at least {min_free / 1024 ** 2:.0f} MiB)")


def is_disk_error(exc: BaseException, run_dir: Path) -> bool:
    """An OSError from writing the run dir: storage full, read-only, over quota or failing; or
    permissions lost on a file in the run dir (a write error without a file name counts: the
    search writes nothing but the run dir)."""
    if not isinstance(exc, OSError):
        return False
    if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO):
        return True
    if exc.errno in (errno.EACCES, errno.EPERM):
        if exc.filename is None:
            return True
        inside = os.path.abspath(os.fsdecode(exc.filename))
        return inside.startswith(os.path.abspath(run_dir) + os.sep)
    return False
