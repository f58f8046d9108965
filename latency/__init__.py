"""Latency prediction for platform-aware search: lookup tables, baselines and custom predictors.

onnxruntime is imported only by `latency.device_profile` (the timing procedure, also shipped as the
standalone script of a device bundle), and only when something needs to time a graph.
"""
from __future__ import annotations

import importlib
import inspect
import os
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec

from .table import LatencyTable, load_table, save_table


@runtime_checkable
class LatencyPredictor(Protocol):
    """Predicts batch-1 latency in milliseconds on the target device."""

    def predict(self, arch: ArchSpec) -> float: ...

    def predict_many(self, archs: Sequence[ArchSpec]) -> np.ndarray: ...


BUILTIN_PREDICTORS = ("lut", "measured", "flops")


def make_profiler(profiler: Any = None) -> Any:
    """A `Profiler` from None (defaults), a dict of `ProfilerConfig` fields, a config or a
    profiler (imports onnxruntime)."""
    from .profiler import Profiler, ProfilerConfig
    if isinstance(profiler, Profiler):
        return profiler
    if isinstance(profiler, ProfilerConfig):
        return Profiler(profiler)
    return Profiler(ProfilerConfig.from_dict(profiler))


def _table(table: Any) -> LatencyTable | None:
    if table is None or isinstance(table, LatencyTable):
        return table
    return load_table(table)


def create_predictor(name: str, *, space: MnasNetSpace, table: Any = None,
                     **kwargs: Any) -> LatencyPredictor:
    """`"lut"`, `"measured"`, `"flops"` or a dotted path `"pkg.module:Name"` -> a predictor.

    lut kwargs: calibration ("auto"), profiler (dict; also times missing entries on demand when
    given), build_if_missing (build the table at `table` first if the file does not exist),
    build (dict of BuildOptions), progress, reanchor (auto: scale predictions by the table's
    canary re-timed now against its build, when this machine built it).
    flops kwargs: ms_per_mmac, intercept_ms.
    measured kwargs: profiler. Custom classes get `space`/`table` if their signature takes them."""
    from .predictors import FlopsPredictor, MeasuredPredictor
    if name == "lut":
        return _create_lut(space, table, **kwargs)
    if name == "flops":
        unknown = set(kwargs) - {"ms_per_mmac", "intercept_ms"}
        if unknown:
            raise ValueError(f"latency.kwargs.{sorted(unknown)[0]}: unknown for 'flops' "
                             "(expected ms_per_mmac, intercept_ms)")
        return FlopsPredictor(space, _table(table), **kwargs)
    if name == "measured":
        unknown = set(kwargs) - {"profiler"}
        if unknown:
            raise ValueError(f"latency.kwargs.{sorted(unknown)[0]}: unknown for 'measured'")
        return MeasuredPredictor(space, make_profiler(kwargs.get("profiler")))
    if ":" in name:
        return load_custom(name, space=space, table=table, **kwargs)
    raise ValueError(f"latency.predictor: {name!r} is not one of "
                     f"{', '.join(BUILTIN_PREDICTORS)} nor a dotted path 'pkg.module:Name'")


def _create_lut(space: MnasNetSpace, table: Any, *, calibration: str = "auto",
                profiler: Any = None, build_if_missing: bool = False, build: Any = None,
                progress: bool = True, reanchor: bool | str = "auto") -> LatencyPredictor:
    from .build import BuildOptions, build_table
    from .predictors import LutPredictor
    if table is None:
        raise ValueError("latency predictor 'lut' needs a table (latency.table: FILE); build one "
                         "with `mnas latency build CONFIG --out FILE`")
    if not isinstance(table, LatencyTable) and build_if_missing:
        path = os.fspath(table)
        needs_build = not os.path.exists(path) or not load_table(path).complete
        if needs_build:
            build_table(space, make_profiler(profiler), path, BuildOptions.from_dict(build),
                        progress=progress)
    loaded = _table(table)
    prof = make_profiler(profiler) if profiler is not None else None
    anchor = _reanchor(space, loaded, reanchor)
    lut = LutPredictor(space, loaded, calibration=calibration, profiler=prof,
                       scale=anchor["factor"] if anchor else 1.0)
    lut.anchor = anchor  # reported by `mnas search`
    return lut


def _reanchor(space: MnasNetSpace, table: LatencyTable, when: bool | str) -> dict[str, Any] | None:
    """`reanchor`: "auto" re-times the table's canary when this machine timed the table (a
    table from a device is not re-anchored against the host), True always, False never."""
    from .validate import measured_here, reanchor

    if when not in (True, False, "auto"):
        raise ValueError(f"latency.kwargs.reanchor: expected true, false or auto, got {when!r}")
    if when is False or not table.canary or (when == "auto" and not measured_here(table)):
        return None
    return reanchor(space, table)


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
    if not isinstance(obj, LatencyPredictor) or not callable(getattr(obj, "predict", None)) \
            or not callable(getattr(obj, "predict_many", None)):
        raise ValueError(f"latency.predictor: {path!r} does not satisfy LatencyPredictor "
                         "(needs predict(arch) -> float and predict_many(archs) -> array)")
    return obj


__all__ = ["LatencyPredictor", "LatencyTable", "create_predictor", "load_custom", "load_table",
           "save_table", "make_profiler", "BUILTIN_PREDICTORS"]
