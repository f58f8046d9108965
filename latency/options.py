"""Every option of the latency package as a typed dataclass, loaded by the one config loader.

`latency.kwargs` in an experiment config is the dataclass of the built-in predictor that
`latency.predictor` names (`PREDICTOR_OPTIONS`); a custom predictor's kwargs stay a free mapping
for its own constructor (your code checks them). `ProfilerConfig` and `BuildOptions` nest inside
them. This module imports nothing heavy (no onnxruntime), so a config can be checked without it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mnas.config.loader import check

#: The built-in predictors, by the name `latency.predictor` gives them.
BUILTIN_PREDICTORS = ("lut", "measured", "flops", "csv_column", "ofa_yaml", "proxyless_yaml")
#: Predictors that price the mnasnet space's architectures (ArchSpec) only.
MNASNET_ONLY = ("lut", "measured", "flops")


@dataclass(frozen=True)
class ProfilerConfig:
    """How to time a graph. Defaults: CPU, one thread (the paper's single big core), batch 1,
    and the *minimum* of the timed runs: load from elsewhere only ever adds time, so under load
    it repeats far better than the median (32x32 networks timed twice here: Kendall tau 0.92 vs
    0.87), and on a quiet machine the two are alike (bench/results/latency*.json)."""

    provider: str = "CPUExecutionProvider"
    threads: int = 1
    warmup: int = 10
    runs: int = 30
    rounds: int = 3
    statistic: Literal["median", "p25", "p10", "min", "mean"] = "min"
    pin: bool = True
    min_time_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("threads", "runs", "rounds"):
            check(getattr(self, name) >= 1, name, "a positive integer", getattr(self, name))
        check(self.warmup >= 0, "warmup", "an integer >= 0", self.warmup)
        check(self.min_time_s >= 0, "min_time_s", "a number >= 0", self.min_time_s)


@dataclass(frozen=True)
class BuildOptions:
    """Knobs of a table build (all have sensible defaults): end-to-end calibration networks
    timed in each of `passes` passes, validation networks held out of the fit, the seed of the
    networks drawn, entries timed per chunk, the drift tolerance and retries of a chunk, and
    whether a canary network watches the machine's speed."""

    calibration_samples: int = 120
    validation_samples: int = 0
    passes: int = 2
    seed: int = 0
    chunk: int = 25
    drift_tol: float = 0.15
    max_retries: int = 2
    canary: bool = True

    def __post_init__(self) -> None:
        for name in ("calibration_samples", "validation_samples", "seed", "max_retries"):
            check(getattr(self, name) >= 0, name, "an integer >= 0", getattr(self, name))
        for name in ("chunk", "passes"):
            check(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        check(self.validation_samples != 1, "validation_samples",
              "0 (none) or at least 2 (a ranking needs two)", self.validation_samples)
        check(self.drift_tol > 0, "drift_tol", "a number > 0", self.drift_tol)


@dataclass(frozen=True)
class LutOptions:
    """`latency.kwargs` of the `lut` predictor: which calibration of the table to apply ("auto":
    the table's selected fit, "none": the raw sum, or a kind the table holds); a `profiler` also
    times missing entries on demand; `build_if_missing` builds the table at `latency.table` with
    `build` (and `profiler`) first when the file is missing or incomplete; `reanchor` scales
    predictions by the table's canary re-timed now against its build (false, the default: never;
    "auto": when this machine built the table; true: always). Off by default because on this
    2-core VM one canary timing varied by up to 2x between consecutive measurements on an idle
    machine, so the factor was noise more often than a correction (bench/README.md#re-anchoring)."""

    calibration: str = "auto"
    profiler: ProfilerConfig | None = None
    build_if_missing: bool = False
    build: BuildOptions = field(default_factory=BuildOptions)
    progress: bool = True
    reanchor: bool | Literal["auto"] = False


@dataclass(frozen=True)
class FlopsOptions:
    """`latency.kwargs` of the `flops` predictor: a fixed cost per million multiply-adds (and a
    constant), or none to use the fit stored in the table."""

    ms_per_mmac: float | None = None
    intercept_ms: float = 0.0


@dataclass(frozen=True)
class MeasuredOptions:
    """`latency.kwargs` of the `measured` predictor: how each whole network is timed."""

    profiler: ProfilerConfig = field(default_factory=ProfilerConfig)


@dataclass(frozen=True)
class CsvColumnOptions:
    """`latency.kwargs` of the `csv_column` predictor: the CSV column holding each
    architecture's latency (ms), and the column keying the rows by architecture string."""

    column: str | None = None
    key_column: str = "arch"


@dataclass(frozen=True)
class LayerTableOptions:
    """`latency.kwargs` of the `ofa_yaml` / `proxyless_yaml` predictors: the width of OFA's
    feature-mix layer (`Conv_2`) the table was measured with."""

    feature_mix: int = 1536

    def __post_init__(self) -> None:
        check(self.feature_mix >= 1, "feature_mix", "an integer >= 1", self.feature_mix)


#: The kwargs dataclass of each built-in predictor.
PREDICTOR_OPTIONS: dict[str, type] = {
    "lut": LutOptions, "flops": FlopsOptions, "measured": MeasuredOptions,
    "csv_column": CsvColumnOptions, "ofa_yaml": LayerTableOptions,
    "proxyless_yaml": LayerTableOptions}
