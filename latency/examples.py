"""A worked example of a custom latency predictor (see `experiments/custom_predictor.yaml`).

Any class works as `latency.predictor: "pkg.module:Name"` when it has `predict(arch) -> float`
(milliseconds, batch 1) and `predict_many(archs) -> np.ndarray`. Its constructor receives the
YAML `latency.kwargs`, plus `space` (the `MnasNetSpace`) and `table` (the `latency.table` path or
None) when its signature names them. This one is a two-term cost model: time grows with
multiply-adds (compute) and with weights (memory traffic), which a device-specific fit of the
two costs captures better than multiply-adds alone on many mobile CPUs. It needs no table and
no onnxruntime, so it is also the quickest predictor to search with.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec, out_size

from .keys import (head_macs, head_weights, layer_macs, layer_weights, stem_macs,
                   stem_weights)


def macs_and_weights(arch: ArchSpec, input_size: int, num_classes: int) -> tuple[int, int]:
    """Analytic multiply-adds and conv/FC weights of an architecture at `input_size`."""
    macs = stem_macs(3, arch.stem_filters, arch.stem_stride, input_size)
    weights = stem_weights(3, arch.stem_filters)
    res = out_size(input_size, arch.stem_stride)
    for spec in arch.layers():
        macs += layer_macs(spec, res)
        weights += layer_weights(spec)
        res = out_size(res, spec.stride)
    last = arch.blocks[-1].out_filters
    macs += head_macs(last, arch.head_filters, num_classes, res)
    weights += head_weights(last, arch.head_filters, num_classes)
    return macs, weights


class MacsParamsPredictor:
    """ms = intercept_ms + ms_per_mmac * M multiply-adds + ms_per_mparam * M weights.

    The defaults are a rough fit for one thread of a 2-core x86 VM under onnxruntime at 224x224;
    fit the three numbers to your device's measurements (e.g. `mnas latency measure` output)."""

    def __init__(self, space: MnasNetSpace, *, ms_per_mmac: float = 0.01,
                 ms_per_mparam: float = 0.2, intercept_ms: float = 0.3) -> None:
        for name, value in (("ms_per_mmac", ms_per_mmac), ("ms_per_mparam", ms_per_mparam),
                            ("intercept_ms", intercept_ms)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"latency.kwargs.{name}: expected a number >= 0, got {value!r}")
        if ms_per_mmac == 0 and ms_per_mparam == 0 and intercept_ms == 0:
            raise ValueError("latency.kwargs: all costs are 0 (latency must be positive)")
        self.space = space
        self.coef = np.array([float(ms_per_mmac), float(ms_per_mparam)])
        self.intercept = float(intercept_ms)

    def predict(self, arch: ArchSpec) -> float:
        return float(self.predict_many([arch])[0])

    def predict_many(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        s = self.space
        counts = np.array([macs_and_weights(a, s.input_size, s.num_classes) for a in archs],
                          dtype=float).reshape(-1, 2)
        return np.asarray(self.intercept + (counts / 1e6) @ self.coef)
