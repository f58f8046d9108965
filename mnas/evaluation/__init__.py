"""Child evaluation as a plug-in point, like latency predictors.

An evaluator turns an architecture (the space's spec) into an `EvalResult` (accuracy and status).
`evaluator.name` in a config selects one: `train` (brief training of the child, the default; on
Ray workers), `supernet` (inherited weights of a trained one-shot supernet, on the same workers),
`table` (accuracy looked up in a CSV column), `ofa_predictor` (OFA's accuracy MLP), or
`pkg.module:Name` (your own class, imported only because the config names it). Evaluators whose
`remote` attribute is true (train, supernet) run on the executor pool, which calls their `trainer`
(a picklable `(arch, train_config, num_classes=None) -> dict`); all others run in the driver
process, a batch at a time, so a cheap evaluator's search costs no Ray start-up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mnas.config.loader import load_section
from mnas.plugins import load_plugin

if TYPE_CHECKING:
    from search_spaces.interface import SearchSpace

#: Evaluators built in (besides "pkg.module:Name").
BUILTIN_EVALUATORS: tuple[str, ...] = ("train", "supernet", "table", "ofa_predictor")


@dataclass(frozen=True)
class NoOptions:
    """`evaluator.kwargs` of an evaluator that takes none (train, supernet, ofa_predictor)."""


@dataclass(frozen=True)
class TableOptions:
    """`evaluator.kwargs` of the `table` evaluator: the CSV column keying rows by architecture
    string, and whether accuracies are percentages (divided by 100) or fractions."""

    key_column: str = "arch"
    percent: bool = True


#: The kwargs dataclass of each built-in evaluator (the config loader checks `evaluator.kwargs`
#: against it; a custom evaluator's kwargs stay a free mapping its own code checks).
EVALUATOR_OPTIONS: dict[str, type] = {"train": NoOptions, "supernet": NoOptions,
                                      "table": TableOptions, "ofa_predictor": NoOptions}


@dataclass(frozen=True)
class EvalResult:
    """What evaluating one child produced. `status` is "ok" or a failure kind ("failed",
    "diverged", ...); `accuracy` is a fraction in [0, 1] (None when not ok); `extra` holds
    evaluator-specific fields written to the history (params, macs, train_loss, ...)."""

    accuracy: float | None
    status: str = "ok"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"params": None, "macs": None, "wall_time_s": None, **self.extra}
        out.update(status=self.status, accuracy=self.accuracy, error=self.error)
        return out


@runtime_checkable
class Evaluator(Protocol):
    """Scores one architecture of the search space."""

    def evaluate(self, arch: Any) -> EvalResult: ...


def is_remote(evaluator: Any) -> bool:
    """Whether the evaluator's children go to the executor pool (Ray) instead of the driver."""
    return bool(getattr(evaluator, "remote", False))


def create_evaluator(name: str, *, space: SearchSpace[Any], path: str | None = None,
                     column: str | None = None, train_config: Any = None, options: Any = None,
                     supernet: Any = None, **kwargs: Any) -> Evaluator:
    """An evaluator by name (see the module docstring). A built-in one takes its
    `EVALUATOR_OPTIONS` dataclass as `options` (what the config's `evaluator.kwargs` holds) or
    its fields as keywords (checked by the config loader). `supernet`: the experiment's
    `SupernetConfig` with `checkpoint` resolved (`mnas.supernet.config.checkpoint_path`). Every
    error on user input is one ValueError starting with the config key (`evaluator.path: ...`)."""
    if name in EVALUATOR_OPTIONS and not isinstance(options, EVALUATOR_OPTIONS[name]):
        options = load_section(EVALUATOR_OPTIONS[name], dict(options or {}, **kwargs),
                               "evaluator.kwargs")
    elif kwargs and options is not None:
        raise TypeError("pass evaluator options either as `options` or as keywords")
    if name == "train":
        from search_spaces.space import MnasNetSpace

        from .train import TrainEvaluator
        _no_options(name, path=path, column=column)
        if not isinstance(space, MnasNetSpace):
            raise ValueError("evaluator.name: 'train' trains mnasnet-space children; for this "
                             "space use table, ofa_predictor or your own evaluator")
        return TrainEvaluator(train_config, num_classes=getattr(space, "num_classes", None))
    if name == "supernet":
        from search_spaces.space import MnasNetSpace

        from .supernet import SupernetEvaluator
        if path is not None:
            raise ValueError("evaluator.path: not used by evaluator 'supernet' (its checkpoint "
                             "is supernet.checkpoint)")
        _no_options(name, column=column)
        if not isinstance(space, MnasNetSpace):
            raise ValueError("evaluator.name: 'supernet' scores mnasnet-space children (the "
                             "supernet covers that space only)")
        if supernet is None:
            raise ValueError("evaluator.name: 'supernet' needs the experiment's supernet section")
        return SupernetEvaluator(space, train_config, supernet)
    if name == "table":
        from .table import TableEvaluator
        return TableEvaluator(space, path, column, key_column=options.key_column,
                              percent=options.percent)
    if name == "ofa_predictor":
        from .ofa_predictor import OfaPredictorEvaluator
        _no_options(name, column=column)
        return OfaPredictorEvaluator(space, path)
    if ":" in name:
        plugin_kwargs = dict(options or {}, **kwargs, space=space, path=path, column=column)
        plugin: Evaluator = load_plugin(  # `fits` checked the shape
            name, key="evaluator.name", kwargs=plugin_kwargs, optional=("space", "path", "column"),
            fits=lambda obj: callable(getattr(obj, "evaluate", None)),
            contract="Evaluator (needs evaluate(arch) -> EvalResult)")
        return plugin
    raise ValueError(f"evaluator.name: {name!r} is not one of {', '.join(BUILTIN_EVALUATORS)} "
                     "nor a dotted path 'pkg.module:Name'")


def _no_options(name: str, **options: Any) -> None:
    for key, value in options.items():
        if value is not None:
            raise ValueError(f"evaluator.{key}: not used by evaluator {name!r}")


def as_result(value: Any) -> EvalResult:
    """An evaluator's return value as an EvalResult (custom evaluators may return a mapping
    with accuracy/status, or a bare accuracy number)."""
    if isinstance(value, EvalResult):
        return value
    if isinstance(value, dict):
        extra = {k: v for k, v in value.items() if k not in ("accuracy", "status", "error")}
        return EvalResult(value.get("accuracy"), str(value.get("status") or "ok"),
                          value.get("error"), extra)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return EvalResult(float(value))
    raise ValueError(f"evaluator returned {type(value).__name__}; expected an EvalResult, a "
                     "mapping with accuracy and status, or an accuracy number")


__all__ = ["BUILTIN_EVALUATORS", "EVALUATOR_OPTIONS", "EvalResult", "Evaluator", "as_result",
           "create_evaluator", "is_remote"]
