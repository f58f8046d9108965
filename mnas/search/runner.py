"""Wiring a search from an experiment config: the run directory, the predictor, controller,
tracker and executor. Kept apart from `mnas.search.loop` so the loop itself stays testable with
hand-made parts."""
from __future__ import annotations

import errno
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from mnas.config.schema import ExperimentConfig, fingerprint_diff, load_config, save_config
from mnas.search.executor import Executor, LocalExecutor
from mnas.search.loop import HISTORY_NAME, RewardSpec, Search

CONFIG_NAME = "config.yaml"
REFERENCES = ("mnasnet_a1", "mnasnet_b1", "mobilenet_v2")
#: A fresh or resumed search refuses to start with less free space than this in the run dir.
MIN_FREE_BYTES = 16 * 1024 ** 2
#: Data sets read from `child_training.data.path` (the others are bundled or generated).
_DATA_WITH_PATH = ("mnist", "cifar10", "npz")


def default_run_dir(config: ExperimentConfig) -> Path:
    """`<output.dir>/<name>-<UTC timestamp>` (a new directory per run)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(config.output.dir) / f"{config.name}-{stamp}"


def check_run_dir(config: ExperimentConfig, run_dir: Path, *, resume: bool,
                  force: bool = False) -> None:
    """The run-dir checks of `prepare_run_dir`, without writing anything (cheap: run them before
    anything slow, such as building a latency table)."""
    saved = run_dir / CONFIG_NAME
    if resume:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run directory to resume")
        if not saved.exists():
            raise ValueError(f"{run_dir}: not a search run directory (no {CONFIG_NAME})")
        diff = fingerprint_diff(load_config(saved), config)
        if diff and not force:
            raise ValueError(f"{run_dir}: the config differs from the run's ({'; '.join(diff)}); "
                             "use the run's config.yaml, or --force to resume anyway")
    else:
        if run_dir.exists() and not run_dir.is_dir():
            raise NotADirectoryError(f"{run_dir}: exists and is not a directory")
        if (run_dir / HISTORY_NAME).exists():
            raise ValueError(f"{run_dir}: already holds a search; add --resume to continue it, "
                             "or choose another --run-dir")


def prepare_run_dir(config: ExperimentConfig, run_dir: Path, *, resume: bool,
                    force: bool = False) -> None:
    """Create or check the run dir and write the resolved config.yaml.

    A fresh search refuses a dir that already holds a history (that would mix two searches);
    a resume refuses a config that differs beyond `RESUME_MUTABLE` unless `force`; a dir that
    cannot be written, or a nearly full disk, is refused before any child trains."""
    check_run_dir(config, run_dir, resume=resume, force=force)
    saved = run_dir / CONFIG_NAME
    if not resume:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(f"{run_dir}: a parent exists and is not a directory") \
                from None
        except OSError as exc:
            raise ValueError(f"{run_dir}: cannot create the run directory "
                             f"({exc.strerror or exc})") from None
    check_writable(run_dir)
    try:
        save_config(config, saved)
    except OSError as exc:
        raise ValueError(f"{saved}: cannot write the run's config ({exc.strerror or exc})") \
            from None


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


def check_inputs(config: ExperimentConfig) -> None:
    """Input files a search needs, checked before the run dir or any worker is set up (the
    trainer would only find out in the first child). Errors name the key: `load_config` callers
    prefix the file."""
    data = config.child_training.data
    if data.name in _DATA_WITH_PATH and data.path and not os.path.exists(data.path):
        raise ValueError(f"child_training.data.path: {data.path} does not exist "
                         f"(data set {data.name!r})")


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
        inside = os.path.abspath(os.fspath(exc.filename))
        return inside.startswith(os.path.abspath(run_dir) + os.sep)
    return False


def create_predictor(config: ExperimentConfig,
                     source: str | os.PathLike[str] | None = None) -> Any:
    """The configured latency predictor. Every way it can fail on user input (a dotted path that
    does not import, kwargs it does not take, a missing table or one built for another space)
    becomes one ValueError naming `source` (the config file) and the key."""
    from latency import create_predictor as factory

    lat = config.latency
    try:
        return factory(lat.predictor, space=config.space, table=lat.table, **dict(lat.kwargs))
    except Exception as exc:  # noqa: BLE001 - sorted below; anything else is re-raised
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, (ValueError, FileNotFoundError)):
            key = "latency.table" if "table" in text else "latency"
            message = text if text.startswith("latency.") else f"{key}: {text}"
        elif isinstance(exc, TypeError) and "argument" in text:
            message = f"latency.kwargs: not accepted by predictor {lat.predictor!r} ({text})"
        elif ":" in lat.predictor:  # user code named by the config failed
            message = f"latency.predictor: {lat.predictor!r} raised {type(exc).__name__}: {text}"
        else:
            raise  # a bug in mnas, not a config value
        prefix = f"{source}: " if source is not None else ""
        raise ValueError(prefix + message) from None


def reference_latencies(predictor: Any, config: ExperimentConfig) -> list[tuple[str, float]]:
    """Predicted latency of the reference networks, where the predictor can price them (a
    lookup table built for another space cannot: those are skipped)."""
    from search_spaces.reference import reference_arch

    out = []
    for name in REFERENCES:
        try:
            arch = reference_arch(name, stem_stride=config.space.stem_stride)
            out.append((name, float(predictor.predict(arch))))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def create_search(config: ExperimentConfig, run_dir: Path, *, resume: bool,
                  predictor: Any = None) -> Search:
    from controllers import create_controller

    space = config.space
    predictor = predictor if predictor is not None else create_predictor(config)
    ctrl = config.controller
    controller = create_controller(ctrl.name, space, seed=config.seed, predictor=predictor,
                                   target_ms=config.latency.target_ms, **ctrl.factory_kwargs())
    alpha, beta = config.reward.weights
    reward = RewardSpec(config.latency.target_ms, alpha, beta, config.reward.failed_reward)
    tracker = None
    if config.output.tensorboard or config.output.plot:
        from mnas.config.schema import config_to_dict
        from mnas.tracking import Tracker

        tracker = Tracker(run_dir, decisions=space.decisions, target_ms=config.latency.target_ms,
                          tensorboard=config.output.tensorboard, plot=config.output.plot,
                          references=reference_latencies(predictor, config),
                          hparams={k: v for k, v in config_to_dict(config).items()
                                   if k in ("controller", "reward", "budget", "seed")})
    return Search(run_dir, space=space, controller=controller, latency=predictor.predict,
                  reward=reward, children=config.budget.children, batch=config.budget.batch,
                  resume=resume, tracker=tracker)


def create_executor(config: ExperimentConfig, *, local: bool = False,
                    trainer: Any = None) -> Executor:
    """In-process (`local`) or a Ray actor pool sized by `ray.workers` (0 = by the CPUs)."""
    if local:
        return LocalExecutor(config.child_training, trainer=trainer)
    from mnas.search.ray_pool import RayExecutor

    ray = config.ray
    # a local Ray gets at least the CPUs the requested workers need (oversubscribing a small
    # machine beats actors that can never be placed); a cluster address is used as it is
    cpus = max(os.cpu_count() or 1, math.ceil(ray.workers * ray.cpus_per_child))
    return RayExecutor(config.child_training, trainer=trainer, address=ray.address,
                       workers=ray.workers, cpus_per_child=ray.cpus_per_child,
                       retries=ray.retries, child_timeout_s=ray.child_timeout_s, num_cpus=cpus)


def load_for_run(config_path: str | None, run_dir: Path | None, overrides: list[str], *,
                 resume: bool) -> ExperimentConfig:
    """The config to run: CONFIG (+ --set), or on resume without CONFIG the run's own."""
    if resume and run_dir is not None and not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory to resume")
    if config_path is None:
        if resume and run_dir is not None:
            return load_config(run_dir / CONFIG_NAME, overrides)
        from mnas.config.schema import QUICKSTART

        config_path = str(QUICKSTART)
    return load_config(config_path, overrides)
