"""Wiring a search from an experiment config: the predictor, controller, tracker and executor
(the run directory is `mnas.search.rundir`). Kept apart from `mnas.search.loop` so the loop itself
stays testable with hand-made parts."""
from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnas.config.schema import ExperimentConfig, load_config
from mnas.reward import RewardSpec
from mnas.search.executor import EvaluatorExecutor, Executor, LocalExecutor
from mnas.search.loop import Search
from mnas.search.rundir import RunDir

if TYPE_CHECKING:
    from controllers.base import Controller
    from latency import LatencyPredictor

REFERENCES = ("mnasnet_a1", "mnasnet_b1", "mobilenet_v2")


def check_inputs(config: ExperimentConfig, *, progress: bool = True) -> None:
    """Input files a search needs, checked before the run dir or any worker is set up (the
    trainer would only find out in the first child). Errors name the key: `load_config` callers
    prefix the file. An image folder is decoded (and cached) here, with a progress bar, so
    workers only memory-map the cache and a folder without two classes stops the run now."""
    if config.ray.address is None:  # children train on this machine: its devices must do
        from mnas.training.device import check_precision, resolve_device

        check_precision(config.child_training.precision,
                        resolve_device(config.child_training.device))
    from mnas.training.data import DATA_WITH_PATH, read_arrays, read_val_arrays

    data = config.child_training.data
    for key in ("path", "val_path"):
        value = getattr(data, key)
        if data.name in DATA_WITH_PATH and value and not os.path.exists(value):
            raise ValueError(f"child_training.data.{key}: {value} does not exist "
                             f"(data set {data.name!r})")
    if data.name == "imagefolder":
        for key, read in (("path", read_arrays), ("val_path", read_val_arrays)):
            if getattr(data, key):
                try:
                    read(data, progress=progress)
                except ValueError as exc:
                    raise ValueError(f"child_training.data.{key}: {exc}") from None


def create_predictor(config: ExperimentConfig,
                     source: str | os.PathLike[str] | None = None) -> Any:
    """The configured latency predictor. Its options were checked when the config was loaded;
    what is left to fail is the table (missing, corrupt, built for another space: errors that
    name the file) and user code named by `latency.predictor` (errors that name the key). Either
    becomes one ValueError, prefixed with `source` (the config file)."""
    from latency import TableError, create_predictor as factory

    lat = config.latency
    try:
        return factory(lat.predictor, space=config.space, table=lat.table, options=lat.kwargs)
    except (ValueError, FileNotFoundError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not text.startswith("latency."):
            text = f"{'latency.table' if isinstance(exc, TableError) else 'latency'}: {text}"
        raise ValueError(f"{source}: {text}" if source is not None else text) from None


def create_evaluator(config: ExperimentConfig,
                     source: str | os.PathLike[str] | None = None) -> Any:
    """The configured child evaluator; every way it can fail on user input (a missing CSV, an
    unknown column, a table of another space, user code that does not import) becomes one
    ValueError naming `source` (the config file) and the key."""
    from mnas.evaluation import create_evaluator as factory
    from mnas.supernet.config import checkpoint_path

    ev = config.evaluator
    prefix = f"{source}: " if source is not None else ""
    supernet = replace(config.supernet, checkpoint=str(checkpoint_path(config)))
    try:
        return factory(ev.name, space=config.space, path=ev.path, column=ev.column,
                       train_config=config.child_training, options=ev.kwargs,
                       supernet=supernet)
    except (ValueError, FileNotFoundError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(prefix + (text if text.startswith(("evaluator.", "supernet.")) else
                                   f"evaluator: {text}")) from None
    except Exception as exc:  # user code named by the config failed: one line naming it
        if ":" not in ev.name:
            raise
        raise ValueError(f"{prefix}evaluator.name: {ev.name!r} raised {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def reference_latencies(predictor: LatencyPredictor,
                        config: ExperimentConfig) -> list[tuple[str, float]]:
    """Predicted latency of the reference networks, where the predictor can price them (a
    lookup table built for another space cannot, a custom predictor may fail or return no
    usable number: those are skipped; they only mark the plot)."""
    from search_spaces.reference import reference_arch
    from search_spaces.space import MnasNetSpace

    if not isinstance(config.space, MnasNetSpace):
        return []  # the references are MnasNet-space networks
    out = []
    for name in REFERENCES:
        arch = reference_arch(name, stem_stride=config.space.stem_stride)
        relu = arch.with_(blocks=tuple(b.with_(act="relu") for b in arch.blocks),
                          activation="relu")
        # MobileNetV2's ReLU6 layers are not in a table of the (ReLU) space: its ReLU twin,
        # the same graph but for the clip, marks it then, labelled so
        tries = [(name, arch)] + ([(f"{name} (relu)", relu)] if relu != arch else [])
        for label, candidate in tries:
            try:
                ms = float(predictor.predict(candidate))
            except Exception:  # noqa: BLE001 - user predictors; the search checks every child's
                ms = math.nan
            if math.isfinite(ms) and ms > 0:
                out.append((label, ms))
                break
    return out


def create_controller_and_reward(config: ExperimentConfig,
                                 predictor: LatencyPredictor) -> tuple[Controller, RewardSpec]:
    """The configured controller and reward: one recipe for `mnas search` and the Tune
    searcher (`mnas.tune.MnasSearcher.from_config`)."""
    from controllers import create_controller

    ctrl = config.controller
    controller = create_controller(ctrl.name, config.space, seed=config.seed,
                                   predictor=predictor, target_ms=config.latency.target_ms,
                                   options=ctrl)
    alpha, beta = config.reward.weights
    return controller, RewardSpec(config.latency.target_ms, alpha, beta,
                                  config.reward.failed_reward)


def create_search(config: ExperimentConfig, run_dir: Path, *, resume: bool,
                  predictor: LatencyPredictor | None = None,
                  controller_and_reward: tuple[Controller, RewardSpec] | None = None
                  ) -> Search[Any]:
    """`controller_and_reward`: built beforehand by `create_controller_and_reward` (`mnas
    search` builds them before it writes the run dir: a value they refuse leaves nothing)."""
    space = config.space
    predictor = predictor if predictor is not None else create_predictor(config)
    controller, reward = controller_and_reward or create_controller_and_reward(config, predictor)
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
                  latency_name=config.latency.predictor, reward=reward,
                  children=config.budget.children, batch=config.budget.batch, resume=resume,
                  tracker=tracker)


def create_executor(config: ExperimentConfig, *, local: bool = False,
                    trainer: Any = None, evaluator: Any = None) -> Executor:
    """A cheap (not `remote`) evaluator scores children in this process, a batch at a time; a
    remote one's `trainer` (training, or supernet scoring) runs in-process (`local`) or on a Ray
    actor pool sized by `ray.workers` (0 = by the CPUs)."""
    from mnas.evaluation import is_remote

    if evaluator is not None and not is_remote(evaluator):
        return EvaluatorExecutor(evaluator, capacity=max(64, config.budget.batch))
    if trainer is None:
        trainer = getattr(evaluator, "trainer", None)
    if local:
        return LocalExecutor(config.child_training, trainer=trainer)
    from mnas.search.ray_pool import RayExecutor

    ray = config.ray
    device = config.child_training.device
    if device.startswith("cuda") and ray.gpus_per_child == 0:
        raise ValueError(f"ray.gpus_per_child: 0, but child_training.device is {device!r} (Ray "
                         "gives an actor only the GPUs it asks for); set it > 0, or use --local")
    # a local Ray gets at least the CPUs the requested workers need (oversubscribing a small
    # machine beats actors that can never be placed); a cluster address is used as it is
    cpus = max(os.cpu_count() or 1, math.ceil(ray.workers * ray.cpus_per_child))
    return RayExecutor(config.child_training, trainer=trainer, address=ray.address,
                       workers=ray.workers, cpus_per_child=ray.cpus_per_child,
                       retries=ray.retries, child_timeout_s=ray.child_timeout_s, num_cpus=cpus,
                       gpus_per_child=ray.gpus_per_child)


def load_for_run(config_path: str | None, run_dir: Path | None, overrides: list[str], *,
                 resume: bool) -> ExperimentConfig:
    """The config to run: CONFIG (+ --set), or on resume without CONFIG the run's own."""
    if resume and run_dir is not None and not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory to resume")
    if config_path is None:
        if resume and run_dir is not None:
            return load_config(RunDir(run_dir).config, overrides)
        from mnas.config.schema import QUICKSTART

        config_path = str(QUICKSTART)
    return load_config(config_path, overrides)
