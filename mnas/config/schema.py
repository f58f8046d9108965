"""Experiment configs: one YAML file describes a whole search.

The file is read with `yaml.safe_load` and turned into the frozen dataclasses below by one generic
loader (`mnas.config.loader`) that walks field type hints, so every section gets the same checks and
error messages: `experiments/x.yaml: budget.children: expected an integer > 0, got -3`.

Relative paths (`child_training.data.path`, `.val_path`, `.cache_dir`, `latency.table`,
`evaluator.path`, `supernet.checkpoint`, `output.dir`) are resolved against the current working
directory at load time, like any other command-line path, and stored absolute: the `config.yaml`
saved in a run directory then means the same thing wherever a resume is started from.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import yaml

from controllers import CONTROLLERS, BandOptions, EvolutionOptions, RNNOptions
from latency.options import BUILTIN_PREDICTORS, PREDICTOR_OPTIONS
from mnas.config.loader import (apply_overrides, check, chosen_by, dataclass_from_data,
                                to_plain)
from mnas.config.safe_yaml import safe_load
from mnas.evaluation import BUILTIN_EVALUATORS, EVALUATOR_OPTIONS
from mnas.fileio import atomic_write_text
from mnas.config.experiments import QUICKSTART
from mnas.reward import resolve_weights
from mnas.supernet.config import SupernetConfig
from mnas.training.trainer import MAX_SEED, TrainConfig
from search_spaces.registry import create_space, space_to_dict

#: Dotted keys holding file-system paths, resolved against the CWD by `load_config`.
PATH_KEYS: tuple[str, ...] = ("child_training.data.path", "child_training.data.val_path",
                              "child_training.data.cache_dir", "latency.table", "evaluator.path",
                              "supernet.checkpoint", "output.dir")

#: Keys a resume may change without invalidating the run (excluded from `config_fingerprint`):
#: the budget can be extended, the cluster, the device and the output options are about *where*
#: and *how visibly* children run, not *what* is searched (a search may move to a GPU box); the
#: name is a label; the cache only speeds up.
SEARCH_RESUME_MUTABLE: tuple[str, ...] = ("name", "budget.children", "ray", "output",
                                          "child_training.data.cache_dir",
                                          "child_training.device")

#: `name` + "-YYYYmmdd-HHMMSS" must fit a file name (255 bytes on common file systems).
MAX_NAME_BYTES = 200
_DOTTED = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class _ControllerName:
    name: str = "rnn"


@dataclass(frozen=True)
class ControllerConfig(EvolutionOptions, BandOptions, RNNOptions, _ControllerName):
    """Which controller proposes architectures (`name`, one of `controllers.CONTROLLERS`), and
    the options of every controller, flat under `controller:`; each controller's options are
    declared once, by its own `Options` dataclass (`RNNOptions`, `BandOptions`,
    `EvolutionOptions`), with their defaults and ranges. The RNN's lr and entropy weight are
    higher than NASNet's 0.00035 and 1e-5 because our searches sample hundreds, not thousands, of
    children: the ImageNet config sets the paper's values. `band` is [lo, hi] as fractions of
    `latency.target_ms`.
    """

    def __post_init__(self) -> None:
        check(self.name in CONTROLLERS, "name", f"one of {', '.join(CONTROLLERS)}", self.name)
        RNNOptions.__post_init__(self)
        BandOptions.__post_init__(self)
        EvolutionOptions.__post_init__(self)


@dataclass(frozen=True)
class LatencyConfig:
    """How LAT(m) is obtained: `predictor` is lut | measured | flops | csv_column | ofa_yaml |
    proxyless_yaml | "pkg.module:Name" (your own class, imported only because the config names
    it); `kwargs` are the built-in predictor's options (`latency.options.PREDICTOR_OPTIONS`) or
    a mapping for your class's constructor (your code checks it); `table` is the lookup-table
    file (lut) or the imported table; `target_ms` is T in the reward."""

    predictor: str = "lut"
    # typed by `predictor` (the loader picks the dataclass); Any for a custom class's mapping
    kwargs: Any = field(default_factory=dict, metadata=chosen_by(
        "predictor", PREDICTOR_OPTIONS, otherwise=dict[str, Any]))
    table: str | None = None
    target_ms: float = 75.0

    def __post_init__(self) -> None:
        check(self.predictor in BUILTIN_PREDICTORS or bool(_DOTTED.fullmatch(self.predictor)),
              "predictor", f"one of {', '.join(BUILTIN_PREDICTORS)} or 'pkg.module:Name'",
              self.predictor)
        check(self.target_ms > 0, "target_ms", "a number > 0", self.target_ms)


@dataclass(frozen=True)
class EvaluatorConfig:
    """How a child's accuracy is obtained: `name` is train (brief training on Ray workers, the
    default) | supernet (inherited weights of the `supernet` section's checkpoint, scored on the
    same workers) | table (a CSV column: `path`, `column`) | ofa_predictor (OFA's accuracy MLP:
    `path` to acc_predictor.npz) | "pkg.module:Name" (your own class, imported only because the
    config names it). `kwargs` are the built-in evaluator's options
    (`mnas.evaluation.EVALUATOR_OPTIONS`; table: key_column, percent) or a mapping for your
    class's constructor."""

    name: str = "train"
    path: str | None = None
    column: str | None = None
    # typed by `name` (the loader picks the dataclass); Any for a custom class's mapping
    kwargs: Any = field(default_factory=dict, metadata=chosen_by(
        "name", EVALUATOR_OPTIONS, otherwise=dict[str, Any]))

    def __post_init__(self) -> None:
        check(self.name in BUILTIN_EVALUATORS or bool(_DOTTED.fullmatch(self.name)),
              "name", f"one of {', '.join(BUILTIN_EVALUATORS)} or 'pkg.module:Name'", self.name)


@dataclass(frozen=True)
class RewardConfig:
    """ACC * (LAT/T)^w: `preset` soft (alpha = beta = -0.07) or hard (alpha = 0, beta = -1), or
    explicit `alpha` and `beta` (then no preset). Nothing given = soft. `failed_reward` is what
    the controller is told for children that failed, diverged or timed out."""

    preset: Literal["soft", "hard"] | None = None
    alpha: float | None = None
    beta: float | None = None
    failed_reward: float = 0.0

    def __post_init__(self) -> None:
        resolve_weights(self.preset, self.alpha, self.beta)  # errors name `reward: ...`
        if self.preset is None and self.alpha is None:
            object.__setattr__(self, "preset", "soft")

    @property
    def weights(self) -> tuple[float, float]:
        """(alpha, beta) after resolving the preset."""
        return resolve_weights(self.preset, self.alpha, self.beta)


@dataclass(frozen=True)
class RayConfig:
    """Where children train. `address` null = a local Ray instance; `workers` 0 = one per
    `cpus_per_child` CPUs; `gpus_per_child` > 0 gives each actor that share of a GPU (0.5 = two
    children per GPU) and caps the pool at what the GPUs can place; `retries` per child after a
    worker crash; `child_timeout_s` null = none."""

    address: str | None = None
    workers: int = 0
    cpus_per_child: float = 1.0
    gpus_per_child: float = 0.0
    retries: int = 2
    child_timeout_s: float | None = None

    def __post_init__(self) -> None:
        check(self.workers >= 0, "workers", "an integer >= 0 (0 = auto)", self.workers)
        check(self.cpus_per_child > 0, "cpus_per_child", "a number > 0", self.cpus_per_child)
        gpus = self.gpus_per_child
        check(gpus >= 0 and (gpus <= 1 or float(gpus).is_integer()), "gpus_per_child",
              "a number >= 0 (a fraction of one GPU, or whole GPUs)", gpus)
        check(self.retries >= 0, "retries", "an integer >= 0", self.retries)
        check(self.child_timeout_s is None or self.child_timeout_s > 0, "child_timeout_s",
              "a number > 0 or null", self.child_timeout_s)


@dataclass(frozen=True)
class BudgetConfig:
    """How many children in total, and how many are sampled per controller update."""

    children: int = 100
    batch: int = 8

    def __post_init__(self) -> None:
        check(self.children > 0, "children", "an integer > 0", self.children)
        check(self.batch > 0, "batch", "an integer > 0", self.batch)


@dataclass(frozen=True)
class OutputConfig:
    """Where runs go (`dir`/<run name>) and what is written besides history and checkpoints."""

    dir: str = "runs"
    tensorboard: bool = True
    plot: bool = True


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole search. `search_space` is kept as the space's full, normalised mapping with its
    `name` (see `search_spaces.registry`), so a saved config spells out every choice."""

    name: str = "mnas"
    seed: int = 0
    search_space: dict[str, Any] = field(default_factory=dict)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    child_training: TrainConfig = field(default_factory=TrainConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)

    def __post_init__(self) -> None:
        check(bool(self.name) and "/" not in self.name and self.name not in (".", "..")
              and self.name.isprintable() and len(self.name.encode()) <= MAX_NAME_BYTES, "name",
              f"a non-empty name without '/' or control characters, at most "
              f"{MAX_NAME_BYTES} bytes (it names the run directory)", self.name)
        check(0 <= self.seed <= MAX_SEED, "seed", f"an integer in [0, {MAX_SEED}]", self.seed)
        # each space's settings go through the config loader (`from_dict`), under `search_space`
        object.__setattr__(self, "search_space", space_to_dict(create_space(self.search_space)))

    @property
    def space(self) -> Any:
        return create_space(self.search_space)


def parse_overrides(items: Iterable[str]) -> list[tuple[str, Any]]:
    """`key.path=value` strings -> (key path, value parsed as a YAML scalar/flow value)."""
    parsed = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. budget.children=20")
        try:
            value = safe_load(text)
        except yaml.YAMLError:
            raise ValueError(f"--set {item!r}: the value is not valid YAML") from None
        except ValueError as exc:
            raise ValueError(f"--set {key.strip()}: {exc}") from None
        parsed.append((key.strip(), value))
    return parsed


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for dotted in PATH_KEYS:
        node: Any = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, dict) and isinstance(node.get(last), str) and node[last]:
            node[last] = os.path.abspath(base / os.path.expanduser(node[last]))


def config_from_dict(data: Mapping[str, Any], *, overrides: Iterable[str] = (),
                     base_dir: str | os.PathLike[str] | None = None) -> ExperimentConfig:
    """Build an ExperimentConfig from plain data (+ `--set` overrides); paths resolved against
    `base_dir` (default: the CWD). Errors are ValueErrors naming the key path."""
    raw = copy.deepcopy(dict(data)) if data else {}
    apply_overrides(raw, parse_overrides(overrides), ExperimentConfig)
    config = dataclass_from_data(ExperimentConfig, raw, "")
    # Resolve paths on the validated config, so defaults (e.g. output.dir) are resolved too.
    resolved = to_plain(config)
    _resolve_paths(resolved, Path(base_dir) if base_dir is not None else Path.cwd())
    return dataclass_from_data(ExperimentConfig, resolved, "")


def load_config(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read, validate and resolve one experiment YAML file (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such experiment config")
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # over a size or depth limit (UnicodeDecodeError: below)
        if isinstance(exc, UnicodeDecodeError):
            raise ValueError(f"{path}: not a UTF-8 text file") from None
        raise ValueError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ValueError(f"{path}: invalid YAML: {problem}{where}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    if data is None:
        raise ValueError(f"{path}: empty file (expected an experiment config mapping)")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections at the top level, "
                         f"got {type(data).__name__}")
    try:
        return config_from_dict(data, overrides=overrides)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain data (dicts, lists, scalars) that `config_from_dict` turns back into `config`."""
    plain: dict[str, Any] = to_plain(config)
    return plain


def save_config(config: ExperimentConfig, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config as YAML, atomically (temp file + os.replace)."""
    path = Path(path)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)
    return atomic_write_text(
        path, "# Resolved experiment config written by mnas (every default spelled out).\n" + text)


def _drop(data: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data.get(part, {})
    data.pop(last, None)


def _fingerprint_data(config: ExperimentConfig) -> dict[str, Any]:
    data = config_to_dict(config)
    for dotted in SEARCH_RESUME_MUTABLE:
        _drop(data, dotted)
    return data


def config_fingerprint(config: ExperimentConfig) -> str:
    """A hash of everything that defines *what* is searched (all but `SEARCH_RESUME_MUTABLE`): a
    resume with a different fingerprint would mix two searches in one history."""
    text = json.dumps(_fingerprint_data(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_diff(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Dotted keys (outside `SEARCH_RESUME_MUTABLE`) whose values differ, for a resume error."""
    out: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        elif a != b:
            out.append(f"{prefix}: {a!r} -> {b!r}")

    walk(_fingerprint_data(old), _fingerprint_data(new), "")
    return out


__all__ = ["BudgetConfig", "ControllerConfig", "EvaluatorConfig", "ExperimentConfig",
           "LatencyConfig", "OutputConfig", "PATH_KEYS", "QUICKSTART", "SEARCH_RESUME_MUTABLE",
           "RayConfig", "RewardConfig",
           "config_fingerprint", "config_from_dict", "config_to_dict",
           "fingerprint_diff", "load_config", "parse_overrides", "save_config"]
