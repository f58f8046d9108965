"""Experiment configs: one YAML file describes a whole search.

The file is read with `yaml.safe_load` and turned into the frozen dataclasses below by one generic
loader (`mnas.config.loader`) that walks field type hints, so every section gets the same checks and
error messages: `experiments/x.yaml: budget.children: expected an integer > 0, got -3`.

Relative paths (`child_training.data.path`, `.val_path`, `.cache_dir`, `latency.table`,
`output.dir`) are resolved against the current working directory at load time, like any other
command-line path, and stored absolute: the `config.yaml` saved in a run directory then means the
same thing wherever a resume is started from.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import yaml

from latency import BUILTIN_PREDICTORS
from mnas.config.loader import apply_overrides, dataclass_from_data, to_plain
from mnas.config.safe_yaml import safe_load
from mnas.evaluation import BUILTIN_EVALUATORS
from mnas.fileio import atomic_write_text
from mnas.config.experiments import QUICKSTART
from mnas.reward import resolve_weights
from mnas.supernet.config import SupernetConfig
from mnas.training.trainer import MAX_SEED, TrainConfig
from search_spaces.registry import create_space, space_to_dict

#: Dotted keys holding file-system paths, resolved against the CWD by `load_config`.
PATH_KEYS: tuple[str, ...] = ("child_training.data.path", "child_training.data.val_path",
                              "child_training.data.cache_dir", "latency.table", "evaluator.path",
                              "output.dir")

#: Keys a resume may change without invalidating the run (excluded from `config_fingerprint`):
#: the budget can be extended, the cluster, the device and the output options are about *where*
#: and *how visibly* children run, not *what* is searched (a search may move to a GPU box); the
#: name is a label; the cache only speeds up.
SEARCH_RESUME_MUTABLE: tuple[str, ...] = ("name", "budget.children", "ray", "output",
                                          "child_training.data.cache_dir",
                                          "child_training.device")

#: `name` + "-YYYYmmdd-HHMMSS" must fit a file name (255 bytes on common file systems).
MAX_NAME_BYTES = 200
#: Larger controllers do not fit in memory (hidden_size 1e8 is 8e16 weights).
MAX_HIDDEN_SIZE = 4096
_DOTTED = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _check(ok: bool, key: str, expected: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{key}: expected {expected}, got {value!r}")


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _controller_default(name: str) -> Any:
    """The controllers' own default for option `name`: one source of truth for both."""
    from controllers import CONTROLLERS
    for cls in CONTROLLERS.values():
        param = inspect.signature(cls.__init__).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    raise KeyError(name)


@dataclass(frozen=True)
class ControllerConfig:
    """Which controller proposes architectures, and its settings. Defaults are the controllers'
    own (`controllers.create_controller`; lr and entropy weight are higher than NASNet's 0.00035
    and 1e-5 because our searches sample hundreds, not thousands, of children: the ImageNet
    config sets the paper's values).

    `rnn` uses `algorithm` ... `ppo_clip`; `constrained_random` uses `band`/`max_tries`;
    `evolution` uses `population_size`/`sample_size` (tournament size); `random` uses none.
    `band` is [lo, hi] as fractions of `latency.target_ms`.
    """

    name: Literal["rnn", "random", "constrained_random", "evolution"] = "rnn"
    algorithm: Literal["reinforce", "ppo"] = _controller_default("algorithm")
    hidden_size: int = _controller_default("hidden_size")
    lr: float = _controller_default("lr")
    entropy_weight: float = _controller_default("entropy_weight")
    baseline_decay: float = _controller_default("baseline_decay")
    temperature: float = _controller_default("temperature")
    tanh_constant: float | None = _controller_default("tanh_constant")
    ppo_epochs: int = _controller_default("ppo_epochs")
    ppo_clip: float = _controller_default("ppo_clip")
    advantage: Literal["baseline", "risk_seeking"] = _controller_default("advantage")
    top_fraction: float = _controller_default("top_fraction")
    rank_window: int = _controller_default("rank_window")
    band: tuple[float, float] = tuple(_controller_default("band"))
    max_tries: int = _controller_default("max_tries")
    population_size: int = _controller_default("population_size")
    sample_size: int = _controller_default("sample_size")

    def __post_init__(self) -> None:
        for key in ("hidden_size", "ppo_epochs", "max_tries", "population_size", "sample_size",
                    "rank_window"):
            value = getattr(self, key)
            _check(_num(value) and value > 0, f"controller.{key}", "an integer > 0", value)
        _check(self.hidden_size <= MAX_HIDDEN_SIZE, "controller.hidden_size",
               f"an integer <= {MAX_HIDDEN_SIZE} (the LSTM has 8 x hidden_size^2 weights)",
               self.hidden_size)
        for key in ("lr", "temperature", "ppo_clip"):
            value = getattr(self, key)
            _check(_num(value) and value > 0, f"controller.{key}", "a number > 0", value)
        _check(_num(self.entropy_weight) and self.entropy_weight >= 0,
               "controller.entropy_weight", "a number >= 0", self.entropy_weight)
        _check(_num(self.baseline_decay) and 0 <= self.baseline_decay < 1,
               "controller.baseline_decay", "a number in [0, 1)", self.baseline_decay)
        _check(_num(self.top_fraction) and 0 < self.top_fraction <= 1,
               "controller.top_fraction", "a number in (0, 1]", self.top_fraction)
        _check(self.tanh_constant is None or (_num(self.tanh_constant) and self.tanh_constant > 0),
               "controller.tanh_constant", "a number > 0 or null", self.tanh_constant)
        band = tuple(self.band)
        _check(len(band) == 2 and all(_num(b) for b in band) and 0 < band[0] <= band[1],
               "controller.band", "[lo, hi] with 0 < lo <= hi", self.band)
        object.__setattr__(self, "band", (float(band[0]), float(band[1])))
        _check(self.sample_size <= self.population_size, "controller.sample_size",
               f"an integer <= population_size ({self.population_size})", self.sample_size)

    def factory_kwargs(self) -> dict[str, Any]:
        """The keyword arguments `controllers.create_controller` takes for this `name`."""
        if self.name == "rnn":
            keys = ("algorithm", "hidden_size", "lr", "entropy_weight", "baseline_decay",
                    "temperature", "tanh_constant", "ppo_epochs", "ppo_clip", "advantage",
                    "top_fraction", "rank_window")
        elif self.name == "constrained_random":
            keys = ("band", "max_tries")
        elif self.name == "evolution":
            keys = ("population_size", "sample_size")
        else:
            keys = ()
        return {k: getattr(self, k) for k in keys}


@dataclass(frozen=True)
class LatencyConfig:
    """How LAT(m) is obtained: `predictor` is lut | measured | flops | "pkg.module:Name" (your own
    class, imported only because the config names it); `kwargs` go to its constructor; `table` is
    the lookup-table file (lut); `target_ms` is T in the reward."""

    predictor: str = "lut"
    kwargs: dict[str, Any] = field(default_factory=dict)
    table: str | None = None
    target_ms: float = 75.0

    def __post_init__(self) -> None:
        _check(self.predictor in BUILTIN_PREDICTORS or bool(_DOTTED.fullmatch(self.predictor)),
               "latency.predictor",
               f"one of {', '.join(BUILTIN_PREDICTORS)} or 'pkg.module:Name'", self.predictor)
        _check(_num(self.target_ms) and self.target_ms > 0, "latency.target_ms", "a number > 0",
               self.target_ms)


@dataclass(frozen=True)
class EvaluatorConfig:
    """How a child's accuracy is obtained: `name` is train (brief training on Ray workers, the
    default) | table (a CSV column: `path`, `column`) | ofa_predictor (OFA's accuracy MLP:
    `path` to acc_predictor.npz) | "pkg.module:Name" (your own class, imported only because the
    config names it). `kwargs` go to its constructor (table: key_column, percent)."""

    name: str = "train"
    path: str | None = None
    column: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.name in BUILTIN_EVALUATORS or bool(_DOTTED.fullmatch(self.name)),
               "evaluator.name", f"one of {', '.join(BUILTIN_EVALUATORS)} or 'pkg.module:Name'",
               self.name)


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
        _check(self.workers >= 0, "ray.workers", "an integer >= 0 (0 = auto)", self.workers)
        _check(self.cpus_per_child > 0, "ray.cpus_per_child", "a number > 0", self.cpus_per_child)
        gpus = self.gpus_per_child
        _check(gpus >= 0 and (gpus <= 1 or float(gpus).is_integer()), "ray.gpus_per_child",
               "a number >= 0 (a fraction of one GPU, or whole GPUs)", gpus)
        _check(self.retries >= 0, "ray.retries", "an integer >= 0", self.retries)
        _check(self.child_timeout_s is None or self.child_timeout_s > 0, "ray.child_timeout_s",
               "a number > 0 or null", self.child_timeout_s)


@dataclass(frozen=True)
class BudgetConfig:
    """How many children in total, and how many are sampled per controller update."""

    children: int = 100
    batch: int = 8

    def __post_init__(self) -> None:
        _check(self.children > 0, "budget.children", "an integer > 0", self.children)
        _check(self.batch > 0, "budget.batch", "an integer > 0", self.batch)


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
        _check(bool(self.name) and "/" not in self.name and self.name not in (".", "..")
               and self.name.isprintable() and len(self.name.encode()) <= MAX_NAME_BYTES, "name",
               f"a non-empty name without '/' or control characters, at most "
               f"{MAX_NAME_BYTES} bytes (it names the run directory)", self.name)
        _check(_int(self.seed) and 0 <= self.seed <= MAX_SEED, "seed",
               f"an integer in [0, {MAX_SEED}]", self.seed)
        try:
            space = create_space(self.search_space)
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"search_space: {exc}") from None
        object.__setattr__(self, "search_space", space_to_dict(space))

    @property
    def space(self) -> Any:
        return create_space(self.search_space)


#: `--set` keys under `search_space` are checked by the selected space itself (each has its own).
_FIELD_SCHEMAS: dict[str, type] = {}


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
    apply_overrides(raw, parse_overrides(overrides), ExperimentConfig, _FIELD_SCHEMAS)
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
    return to_plain(config)


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
