"""`mnas search`: run (or resume) an architecture search from an experiment config."""
from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from mnas.config.experiments import experiment_path

if TYPE_CHECKING:
    from mnas.commands import Subparsers
    from mnas.search.loop import Search, SearchSummary

EXIT_SIGINT, EXIT_SIGTERM = 130, 143
#: The run dir could not be written mid-search (disk full, read-only): state kept, resumable.
EXIT_DISK = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the loop is so that the same clean stop as Ctrl-C runs."""


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="search architectures (controller + children trained on Ray)",
        description="Run a MnasNet search from an experiment config. Every finished child is "
                    "appended to <run dir>/history.jsonl; Ctrl-C or a kill can be resumed with "
                    "--resume.")
    p.add_argument("config", nargs="?", default=None, type=experiment_path,
                   help="experiment YAML or a shipped experiment's name (default: the "
                        "quickstart; on --resume: the run's own config.yaml)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="run directory (default: <output.dir>/<name>-<timestamp>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set budget.children=50 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted search in --run-dir")
    p.add_argument("--force", action="store_true",
                   help="resume even if the config differs from the run's")
    p.add_argument("--local", action="store_true",
                   help="train children one by one in this process (no Ray; for debugging)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _resume_hint(args: argparse.Namespace, run_dir: Path) -> str:
    parts = ["mnas", "search"] + ([args.config] if args.config else [])
    parts += ["--run-dir", str(run_dir), "--resume"]
    return " ".join(shlex.quote(p) for p in parts)


def _config_source(args: argparse.Namespace) -> Path:
    """The file the config comes from (named in every input error)."""
    from mnas.config.schema import QUICKSTART
    from mnas.search.rundir import RunDir

    if args.config is not None:
        return Path(args.config)
    if args.resume and args.run_dir is not None:
        return RunDir(args.run_dir).config
    return QUICKSTART


def run(args: argparse.Namespace) -> int:
    from mnas.evaluation import is_remote
    from mnas.search.rundir import (check_evaluator, check_run_dir, default_run_dir,
                                    is_disk_error, prepare_run_dir, release, save_evaluator)
    from mnas.search.runner import (check_inputs, create_controller_and_reward, create_evaluator,
                                    create_executor, create_predictor, create_search,
                                    load_for_run)

    if args.resume and args.run_dir is None:
        raise ValueError("--resume needs --run-dir DIR (the run directory to continue)")
    source = _config_source(args)
    config = load_for_run(args.config, args.run_dir, args.overrides, resume=args.resume)
    try:
        check_inputs(config, progress=not args.no_progress)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    run_dir = args.run_dir if args.run_dir is not None else default_run_dir(config)
    check_run_dir(config, run_dir, resume=args.resume, force=args.force)
    # every input is checked before the run dir is written: a typo leaves nothing behind; the
    # evaluator first (a missing supernet checkpoint is found in seconds, a lookup table to
    # build can take minutes)
    evaluator = create_evaluator(config, source)
    identity = getattr(evaluator, "identity", None)
    check_evaluator(run_dir, identity, resume=args.resume, force=args.force)
    predictor = create_predictor(config, source)
    anchor = getattr(predictor, "anchor", None)
    if anchor:
        print(f"latency table re-anchored: canary {anchor['canary_ms_now']:.3f} ms now vs "
              f"{anchor['canary_ms_build']:.3f} ms at build, predictions x"
              f"{anchor['factor']:.3f} (latency.kwargs.reanchor: false to keep the build's)",
              file=sys.stderr, flush=True)
    try:
        built = create_controller_and_reward(config, predictor)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    lock = prepare_run_dir(config, run_dir, resume=args.resume, force=args.force)
    save_evaluator(run_dir, identity)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    search = executor = None
    try:
        search = create_search(config, run_dir, resume=args.resume, predictor=predictor,
                               controller_and_reward=built)
        print(f"run directory: {run_dir}", file=sys.stderr, flush=True)
        if args.resume:
            print(f"resuming: {len(search.records)} children recorded, {search.in_flight} to "
                  f"re-run, budget {search.children}", file=sys.stderr, flush=True)
        if search.done:
            print("the budget is already recorded; nothing to do", file=sys.stderr)
            return 0
        start = time.perf_counter()
        executor = create_executor(config, local=args.local, evaluator=evaluator)
        # ray.init installs its own SIGTERM handler (exit 15, no resume hint): ours again
        signal.signal(signal.SIGTERM, _raise_terminated)
        if args.local and is_remote(evaluator) and config.ray.child_timeout_s is not None:
            print(f"note: --local trains in this process, so ray.child_timeout_s "
                  f"({config.ray.child_timeout_s:g} s) does not apply; only "
                  f"child_training.time_limit_s does", file=sys.stderr, flush=True)
        init = getattr(executor, "init_seconds", None)
        if init is not None:
            startup = getattr(executor, "startup_seconds", 0.0)
            print(f"ray: {executor.capacity} workers ready in "
                  f"{init + startup:.1f} s (ray.init {init:.1f} s)",
                  file=sys.stderr, flush=True)
        summary = search.run(executor, progress=not args.no_progress)
        _print_summary(summary, run_dir, time.perf_counter() - start)
        return 0
    except KeyboardInterrupt as exc:
        code = EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
        done = len(search.records) if search is not None else 0
        print(f"\nmnas search: stopped ({done} children recorded, state saved in {run_dir}); "
              f"resume with: {_resume_hint(args, run_dir)}", file=sys.stderr)
        return code
    except OSError as exc:
        if search is None or not is_disk_error(exc, run_dir):
            raise
        # disk full / read-only / permissions mid-search: everything recorded so far is durable
        # (each history line is fsync'd before it counts), the child being written is in flight
        # in the checkpoint and re-runs on resume
        where = exc.filename or run_dir
        print(f"mnas search: error: {where}: cannot write ({exc.strerror or exc}); "
              f"{len(search.records)} children recorded are safe; free space, then resume with: "
              f"{_resume_hint(args, run_dir)}", file=sys.stderr)
        return EXIT_DISK
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if executor is not None:
            executor.shutdown()
            if not args.local and is_remote(evaluator):
                from mnas.search.ray_pool import shutdown_ray

                shutdown_ray()
        if search is not None:
            _close_quietly(search)
        release(lock)
        signal.signal(signal.SIGTERM, previous)


def _close_quietly(search: Search[Any]) -> None:
    """Close the history and tracker; on a full disk the plot/TensorBoard write may fail too,
    which must not replace the error already reported."""
    try:
        search.close()
    except OSError as exc:
        print(f"mnas search: warning: could not write the plot/TensorBoard events "
              f"({exc.strerror or exc})", file=sys.stderr)


def _print_summary(summary: SearchSummary, run_dir: Path, seconds: float) -> None:
    from mnas.search.rundir import RunDir

    best = summary.best
    print(f"done: {summary.children} children in {seconds:.0f} s; history: "
          f"{RunDir(run_dir).history}", file=sys.stderr)
    if best is None:
        print("no child trained successfully (see the status and error fields in the history)",
              file=sys.stderr)
        return
    print(f"best reward {best.reward:.4f}: accuracy {best.accuracy:.4f}, latency "
          f"{best.latency_ms:.3f} ms, child #{best.index}")
    print("  " + " ".join(best.arch))
    print(f"export it with: mnas export {run_dir}", file=sys.stderr)
