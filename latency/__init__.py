"""Latency prediction for platform-aware search: lookup tables, baselines and custom predictors.

onnxruntime is imported only by `latency.profiler`, and only when something needs to time a graph.
"""
from __future__ import annotations

import importlib
import inspect
import os
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec

from mnas.config.loader import load_section

from .build import build_table
from .options import BUILTIN_PREDICTORS, PREDICTOR_OPTIONS, LutOptions, ProfilerConfig
from .predictors import FlopsPredictor, LutPredictor, MeasuredPredictor
from .table import LatencyTable, TableError, load_table


@runtime_checkable
class LatencyPredictor(Protocol):
    """Predicts batch-1 latency in milliseconds on the target device."""

    def predict(self, arch: ArchSpec) -> float: ...

    def predict_many(self, archs: Sequence[ArchSpec]) -> np.ndarray: ...


def make_profiler(profiler: Any = None) -> Any:
    """A `Profiler` from None (defaults), a mapping of `ProfilerConfig` fields (checked by the
    config loader), a `ProfilerConfig` or a profiler (imports onnxruntime)."""
    from .profiler import Profiler
    if isinstance(profiler, Profiler):
        return profiler
    if not isinstance(profiler, ProfilerConfig):
        profiler = load_section(ProfilerConfig, profiler, "latency.kwargs.profiler")
    return Profiler(profiler)


def _table(table: Any) -> LatencyTable | None:
    if table is None or isinstance(table, LatencyTable):
        return table
    return load_table(table)


def create_predictor(name: str, *, space: MnasNetSpace, table: Any = None, options: Any = None,
                     **kwargs: Any) -> LatencyPredictor:
    """`"lut"`, `"measured"`, `"flops"` or a dotted path `"pkg.module:Name"` -> a predictor.

    A built-in predictor takes its `PREDICTOR_OPTIONS` dataclass as `options` (what the
    experiment config's `latency.kwargs` holds) or its fields as keywords. A custom class gets
    the keywords, and `space`/`table` if its signature takes them."""
    if name in PREDICTOR_OPTIONS:
        if options is None:
            options = load_section(PREDICTOR_OPTIONS[name], kwargs, "latency.kwargs")
        elif kwargs:
            raise TypeError("pass predictor options either as `options` or as keywords")
    if name == "lut":
        return _create_lut(space, table, options)
    if name == "flops":
        return FlopsPredictor(space, _table(table), ms_per_mmac=options.ms_per_mmac,
                              intercept_ms=options.intercept_ms)
    if name == "measured":
        return MeasuredPredictor(space, make_profiler(options.profiler))
    if ":" in name:
        return load_custom(name, space=space, table=table, **dict(options or {}), **kwargs)
    raise ValueError(f"latency.predictor: {name!r} is not one of "
                     f"{', '.join(BUILTIN_PREDICTORS)} nor a dotted path 'pkg.module:Name'")


def _create_lut(space: MnasNetSpace, table: Any, options: LutOptions) -> LatencyPredictor:
    if table is None:
        raise TableError("latency predictor 'lut' needs a table (latency.table: FILE); build one "
                         "with `mnas latency build CONFIG --out FILE`")
    if not isinstance(table, LatencyTable) and options.build_if_missing:
        path = os.fspath(table)
        if not os.path.exists(path) or not load_table(path).complete:
            build_table(space, make_profiler(options.profiler), path, options.build,
                        progress=options.progress)
    prof = make_profiler(options.profiler) if options.profiler is not None else None
    return LutPredictor(space, _table(table), calibration=options.calibration, profiler=prof)


def load_custom(path: str, **kwargs: Any) -> LatencyPredictor:
    """Import `pkg.module:Name` and instantiate it (or use it as is if it is not callable).

    `space` and `table` are passed only when the signature accepts them (or **kwargs)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"latency.predictor: {path!r} is not a dotted path 'pkg.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"latency.predictor: cannot import {module_name!r} for {path!r} ({exc}; "
                         "is it on PYTHONPATH?)") from None
    except Exception as exc:  # user code failing at import: still one line naming it
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(f"latency.predictor: importing {module_name!r} for {path!r} failed: "
                         f"{type(exc).__name__}: {first}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"latency.predictor: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            params = {}
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for optional in ("space", "table"):
            if optional not in params and not var_kw:
                kwargs.pop(optional, None)
        try:
            obj = obj(**kwargs)
        except TypeError as exc:
            raise ValueError(f"latency.predictor: {path!r} rejected its kwargs: {exc}") from None
        except ValueError as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ValueError(f"latency.predictor: {path!r}: {first}") from None
        except Exception as exc:  # noqa: BLE001 - user code: one line naming it, not a traceback
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ValueError(f"latency.predictor: {path!r} raised {type(exc).__name__}: "
                             f"{first}") from None
    if not isinstance(obj, LatencyPredictor) or not callable(getattr(obj, "predict", None)) \
            or not callable(getattr(obj, "predict_many", None)):
        raise ValueError(f"latency.predictor: {path!r} does not satisfy LatencyPredictor "
                         "(needs predict(arch) -> float and predict_many(archs) -> array)")
    return obj


__all__ = ["BUILTIN_PREDICTORS", "LatencyPredictor", "LatencyTable", "TableError",
           "create_predictor", "load_custom", "load_table", "make_profiler"]
