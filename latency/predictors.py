"""Built-in latency predictors: `lut` (table sum + calibration), `flops`, `measured`.

`lut` and `flops` are vectorised for the search, which predicts every sampled child: each
architecture maps to a few rows of a cached per-block feature matrix (stem, one row per block,
head), so `predict_many` is one numpy gather, sum and dot product after the first sight of a block.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from search_spaces.space import MnasNetSpace
from search_spaces.specs import OPS, ArchSpec, BlockSpec, out_size

from .calibrate import BASE_FEATURES, Trees, feature_columns, fit_calibrations
from .keys import (Entry, arch_onnx, entry_onnx, head_key, head_macs, head_weights, layer_key,
                   layer_macs, layer_weights, stem_key, stem_macs, stem_weights)
from .table import LatencyTable, TableError

if TYPE_CHECKING:
    from .profiler import Measurement, ProfilerLike

_NB = len(BASE_FEATURES)
_SKIPS = ("none", "identity", "pool")


def _block_attrs(block: BlockSpec) -> tuple[float, ...]:
    """A block's choices as numbers, for the learned calibration's trees."""
    return (OPS.index(block.op), block.kernel, block.expansion, block.se_ratio,
            _SKIPS.index(block.skip) if block.skip in _SKIPS else -1, block.repeats,
            block.out_filters)


_NA = 7  # len(_block_attrs(...))


class _FeatureCache:
    """Per-block feature rows: [lut ms, layers, M multiply-adds, M weights, one-hot-positioned
    lut ms], and beside them the block's choices as numbers (`attrs`)."""

    def __init__(self, space: MnasNetSpace, entries: dict[str, float] | None,
                 on_missing: Any = None, where: str = "latency table") -> None:
        self.space, self.entries, self.on_missing, self.where = space, entries, on_missing, where
        self.n_pos = len(space.base) + 2
        self.width = _NB + self.n_pos
        self.n_rows = 0
        self.index: dict[Any, int] = {}
        self.matrix = np.zeros((64, self.width))  # grown by doubling: predict() stays O(1)
        self.attrs = np.zeros((64, _NA))

    def _ms(self, key: str, entry: Entry | None = None) -> float:
        if self.entries is None:
            return 0.0
        value = self.entries.get(key)
        if value is None:
            if self.on_missing is None or entry is None:
                raise ValueError(f"{self.where}: no entry {key!r} (the architecture is outside "
                                 "the table's space; configure a profiler to time it on demand)")
            value = self.entries[key] = float(self.on_missing(entry))
        return value

    def _row(self, pos: int, ms: float, layers: int, macs: int, weights: int,
             attrs: tuple[float, ...] = ()) -> int:
        if self.n_rows == len(self.matrix):
            self.matrix = np.vstack([self.matrix, np.zeros_like(self.matrix)])
            self.attrs = np.vstack([self.attrs, np.zeros_like(self.attrs)])
        if attrs:
            self.attrs[self.n_rows] = attrs
        row = self.matrix[self.n_rows]
        row[:_NB] = (ms, layers, macs / 1e6, weights / 1e6)
        row[_NB + pos] = ms
        self.n_rows += 1
        return self.n_rows - 1

    def block_row(self, pos: int, block: BlockSpec, res: int) -> int:
        key = (pos, block, res)
        idx = self.index.get(key)
        if idx is None:
            ms, macs, weights, r = 0.0, 0, 0, res
            for spec in block.layers():
                lk = layer_key(spec, r)
                ms += self._ms(lk, Entry(lk, "layer", r, spec.in_filters, spec=spec))
                macs += layer_macs(spec, r)
                weights += layer_weights(spec)
                r = out_size(r, spec.stride)
            idx = self.index[key] = self._row(pos, ms, block.repeats, macs, weights,
                                              _block_attrs(block))
        return idx

    def edge_row(self, kind: str, arch: ArchSpec, res: int) -> int:
        s = self.space
        key = (kind, arch.stem_filters, arch.stem_stride) if kind == "stem" else \
            (kind, arch.blocks[-1].out_filters, arch.head_filters, res)
        idx = self.index.get(key)
        if idx is None:
            if kind == "stem":
                k = stem_key(3, arch.stem_filters, arch.stem_stride, s.input_size)
                e = Entry(k, "stem", s.input_size, 3, out_filters=arch.stem_filters,
                          stride=arch.stem_stride)
                ms = self._ms(k, e)
                macs, pos = stem_macs(3, arch.stem_filters, arch.stem_stride, s.input_size), 0
                weights = stem_weights(3, arch.stem_filters)
            else:
                i = arch.blocks[-1].out_filters
                k = head_key(i, arch.head_filters, s.num_classes, res)
                e = Entry(k, "head", res, i, out_filters=arch.head_filters, classes=s.num_classes)
                ms = self._ms(k, e)
                macs, pos = head_macs(i, arch.head_filters, s.num_classes, res), self.n_pos - 1
                weights = head_weights(i, arch.head_filters, s.num_classes)
            idx = self.index[key] = self._row(pos, ms, 1, macs, weights)
        return idx

    def indices(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        n = len(self.space.base)
        out = np.empty((len(archs), n + 2), dtype=np.int64)
        for a, arch in enumerate(archs):
            if len(arch.blocks) != n:
                raise ValueError(f"architecture has {len(arch.blocks)} blocks; the latency "
                                 f"table's space has {n}")
            res = out_size(self.space.input_size, arch.stem_stride)
            row = out[a]
            row[0] = self.edge_row("stem", arch, res)
            for i, block in enumerate(arch.blocks):
                row[i + 1] = self.block_row(i + 1, block, res)
                res = out_size(res, block.stride)
            row[n + 1] = self.edge_row("head", arch, res)
        return out

    def gather(self, archs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        """(row indices, summed feature rows) of every architecture."""
        idx = self.indices(archs)  # first: it may grow the matrix
        return idx, self.matrix[idx].sum(axis=1)

    def correction(self, idx: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """The learned calibration's inputs: every block's choices, and each position's share
        of the table sum."""
        shares = feats[:, _NB:] / np.maximum(feats[:, :1], 1e-12)
        return np.hstack([self.attrs[idx[:, 1:-1]].reshape(len(idx), -1), shares])


class _LinearPredictor:
    """Shared machinery: features -> intercept + coef . selected feature columns."""

    cache: _FeatureCache
    coef: np.ndarray
    cols: list[int]
    intercept: float
    trees: Trees | None = None
    scale: float = 1.0

    def predict(self, arch: ArchSpec) -> float:
        return float(self.predict_many([arch])[0])

    def predict_many(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        idx, feats = self.cache.gather(archs)
        out = feats[:, self.cols] @ self.coef + self.intercept
        if self.trees is not None:
            out = out * np.exp(self.trees.predict(self.cache.correction(idx, feats)))
        return np.asarray(out * self.scale) if self.scale != 1.0 else np.asarray(out)


class LutPredictor(_LinearPredictor):
    """Sum of per-layer table entries, calibrated on end-to-end measurements stored in the table.

    `calibration`: "auto" (the table's selected fit), "none" (raw sum), a kind from
    `latency.calibrate.KINDS` or "learned" (when the table has it). `profiler`: a `Profiler`
    to time missing entries on demand. `scale`: a factor on every prediction (the machine's
    speed now against the build's, from the canary: `latency.validate.reanchor`)."""

    def __init__(self, space: MnasNetSpace, table: LatencyTable, *, calibration: str = "auto",
                 profiler: ProfilerLike | None = None, scale: float = 1.0) -> None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"latency predictor 'lut': scale must be a number > 0, got "
                             f"{scale!r}")
        self.scale = float(scale)
        table.check_space(space)
        if not table.complete and calibration != "none":
            raise TableError(f"{table.path}: latency table is incomplete (an interrupted build); "
                             "run `mnas latency build` again to finish it")
        self.space, self.table = space, table
        on_missing = None
        if profiler is not None:
            on_missing = lambda e: profiler.measure(entry_onnx(e)).ms  # noqa: E731
        self.cache = _FeatureCache(space, table.ms(), on_missing, table.path or "latency table")
        self.calibration = self._pick(calibration)
        fit: dict[str, Any] = table.calibration.get("fits", {}).get(self.calibration) if \
            self.calibration != "none" else {"features": ["lut"], "coef": [1.0], "intercept": 0.0}
        self.cols = feature_columns(fit["features"], self.cache.n_pos)
        self.coef, self.intercept = np.asarray(fit["coef"], dtype=float), float(fit["intercept"])
        self.trees = Trees(fit["trees"]) if fit.get("trees") else None

    def _pick(self, calibration: str) -> str:
        fits = self.table.calibration.get("fits", {})
        if calibration == "auto":
            return self.table.calibration.get("selected", "none") if fits else "none"
        if calibration != "none" and calibration not in fits:
            raise TableError(f"{self.table.path}: calibration {calibration!r} is not in the table "
                             f"(available: none, auto, {', '.join(sorted(fits)) or '-'})")
        return calibration

    def features(self, archs: Sequence[ArchSpec]) -> dict[str, np.ndarray]:
        """Named calibration features; `correction`: the learned kind's inputs."""
        idx, f = self.cache.gather(list(archs))
        out = {name: f[:, i] for i, name in enumerate(BASE_FEATURES)}
        out["blocks"] = f[:, _NB:]
        out["correction"] = self.cache.correction(idx, f)
        return out

    def fit_calibration(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Fit all calibration kinds (and the flops cost) on end-to-end samples."""
        archs = [self.space.decode(s["actions"]) for s in samples]
        feats = self.features(archs)
        return fit_calibrations(feats, [s["ms"] for s in samples], feats["correction"])


class FlopsPredictor(_LinearPredictor):
    """Multiply-adds times a fitted cost (plus a fitted constant): the naive baseline.

    The cost comes from the table's end-to-end samples, or from `ms_per_mmac`/`intercept_ms`."""

    def __init__(self, space: MnasNetSpace, table: LatencyTable | None = None, *,
                 ms_per_mmac: float | None = None, intercept_ms: float = 0.0) -> None:
        self.space = space
        self.cache = _FeatureCache(space, None)
        self.cols = [BASE_FEATURES.index("mmacs")]
        if ms_per_mmac is not None:
            self.coef, self.intercept = np.array([float(ms_per_mmac)]), float(intercept_ms)
        elif table is not None and "flops" in table.calibration.get("fits", {}):
            table.check_space(space)
            fit = table.calibration["fits"]["flops"]
            self.coef, self.intercept = np.asarray(fit["coef"], float), float(fit["intercept"])
        else:
            raise TableError("latency predictor 'flops' needs a calibrated table (table: FILE) "
                             "or kwargs ms_per_mmac (and optionally intercept_ms)")


class MeasuredPredictor:
    """Export the whole model to ONNX and time it with the profiler (slow, exact)."""

    def __init__(self, space: MnasNetSpace, profiler: ProfilerLike) -> None:
        self.space, self.profiler = space, profiler

    def measure(self, arch: ArchSpec) -> Measurement:
        return self.profiler.measure(arch_onnx(self.space, arch))

    def predict(self, arch: ArchSpec) -> float:
        return float(self.measure(arch).ms)

    def predict_many(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        return np.array([self.predict(a) for a in archs], dtype=float)
