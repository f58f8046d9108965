"""Latency prediction for platform-aware search: lookup tables, baselines and custom predictors.

The package reads one way, each module importing only those before it: `options` (every option
as a typed dataclass, loaded by the config loader) -> `keys` (what a table holds and the graphs
that time it) -> `calibrate` (the fits and their stored format) -> `table` (the file) ->
`predictors` -> `build` -> `validate`; `imported`/`layer_tables` price tables measured
elsewhere, `bundle` packs a build for a device. onnxruntime is imported only by
`latency.device_profile` (through `latency.profiler`, `build`, `validate` and `bundle`), so
`import latency` (and loading a config) does not import it: `create_predictor` imports `build`
and `validate` only when a table is built or its canary re-timed.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec

from mnas.config.loader import load_section
from mnas.plugins import load_plugin

from .imported import CsvColumnPredictor
from .layer_tables import FORMATS as LAYER_TABLE_FORMATS, LayerTablePredictor
from .options import (BUILTIN_PREDICTORS, MNASNET_ONLY, PREDICTOR_OPTIONS, LutOptions,
                      ProfilerConfig)
from .predictors import FlopsPredictor, LutPredictor, MeasuredPredictor
from .table import LatencyTable, TableError, load_table

if TYPE_CHECKING:
    from search_spaces.interface import SearchSpace
    from .profiler import Profiler


@runtime_checkable
class LatencyPredictor(Protocol):
    """Predicts batch-1 latency in milliseconds on the target device."""

    def predict(self, arch: ArchSpec) -> float: ...

    def predict_many(self, archs: Sequence[ArchSpec]) -> np.ndarray: ...


def make_profiler(profiler: Profiler | ProfilerConfig | Mapping[str, Any] | None = None
                  ) -> Profiler:
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


def create_predictor(name: str, *, space: SearchSpace[Any], table: Any = None,
                     options: Any = None, **kwargs: Any) -> LatencyPredictor:
    """A built-in predictor (`BUILTIN_PREDICTORS`) or a dotted path `"pkg.module:Name"`.

    A built-in predictor takes its `PREDICTOR_OPTIONS` dataclass as `options` (what the
    experiment config's `latency.kwargs` holds) or its fields as keywords (checked by the config
    loader). A custom class gets the keywords, and `space`/`table` if its signature takes them."""
    if name in PREDICTOR_OPTIONS and not isinstance(options, PREDICTOR_OPTIONS[name]):
        options = load_section(PREDICTOR_OPTIONS[name], dict(options or {}, **kwargs),
                               "latency.kwargs")
    elif kwargs and options is not None:
        raise TypeError("pass predictor options either as `options` or as keywords")
    if name in MNASNET_ONLY:
        if not isinstance(space, MnasNetSpace):
            raise ValueError(f"latency.predictor: {name!r} prices mnasnet-space architectures; "
                             f"for this space use csv_column, ofa_yaml or a custom predictor")
        if name == "lut":
            return _create_lut(space, table, options)
        if name == "flops":
            return FlopsPredictor(space, _table(table), ms_per_mmac=options.ms_per_mmac,
                                  intercept_ms=options.intercept_ms)
        if name == "measured":
            return MeasuredPredictor(space, make_profiler(options.profiler))
    if name == "csv_column":
        return CsvColumnPredictor(space, table, column=options.column,
                                  key_column=options.key_column)
    if name in LAYER_TABLE_FORMATS:
        return LayerTablePredictor(space, table, fmt=name, feature_mix=options.feature_mix)
    if ":" in name:
        return load_custom(name, space=space, table=table, **dict(options or {}), **kwargs)
    raise ValueError(f"latency.predictor: {name!r} is not one of "
                     f"{', '.join(BUILTIN_PREDICTORS)} nor a dotted path 'pkg.module:Name'")


def _create_lut(space: MnasNetSpace, table: Any, options: LutOptions) -> LatencyPredictor:
    if table is None:
        raise TableError("latency predictor 'lut' needs a table (latency.table: FILE); build one "
                         "with `mnas latency build CONFIG --out FILE`")
    if not isinstance(table, LatencyTable) and options.build_if_missing:
        from .build import build_table  # onnxruntime (device_profile) only when building

        path = os.fspath(table)
        if not os.path.exists(path) or not load_table(path).complete:
            build_table(space, make_profiler(options.profiler), path, options.build,
                        progress=options.progress)
    loaded = _table(table)
    assert loaded is not None  # None was refused above
    prof = make_profiler(options.profiler) if options.profiler is not None else None
    anchor = _reanchor(space, loaded, options.reanchor)
    lut = LutPredictor(space, loaded, calibration=options.calibration, profiler=prof,
                       scale=anchor["factor"] if anchor else 1.0)
    vars(lut)["anchor"] = anchor  # reported by `mnas search` (not a field of every LutPredictor)
    return lut


def _reanchor(space: MnasNetSpace, table: LatencyTable, when: bool | str) -> dict[str, Any] | None:
    """`reanchor`: "auto" re-times the table's canary when this machine timed the table (a
    table from a device is not re-anchored against the host), True always, False never."""
    if when is False or not table.canary:
        return None
    from .validate import measured_here, reanchor  # onnxruntime only when a canary is re-timed

    if when == "auto" and not measured_here(table):
        return None
    return reanchor(space, table, make_profiler(table.provenance.get("profiler")))


def load_custom(path: str, **kwargs: Any) -> LatencyPredictor:
    """Import `pkg.module:Name` and instantiate it (or use it as is if it is not callable).

    `space` and `table` are passed only when the signature accepts them (or **kwargs)."""
    plugin: LatencyPredictor = load_plugin(  # `fits` checked the shape
        path, key="latency.predictor", kwargs=kwargs, optional=("space", "table"),
        fits=lambda obj: isinstance(obj, LatencyPredictor)
        and callable(getattr(obj, "predict", None))
        and callable(getattr(obj, "predict_many", None)),
        contract="LatencyPredictor (needs predict(arch) -> float and predict_many(archs) -> array)")
    return plugin


__all__ = ["BUILTIN_PREDICTORS", "LatencyPredictor", "LatencyTable", "TableError",
           "create_predictor", "load_custom", "load_table", "make_profiler"]
