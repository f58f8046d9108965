"""Calibration: map summed per-layer table times to end-to-end latency.

Summing isolated layers misses graph-level effects (per-run overhead, caches that are cold inside
a network, fusion across layer boundaries). We fit small linear models on end-to-end measurements
and keep the one with the lowest cross-validated error. Fits minimise *relative* error (rows
divided by the measured time) with non-negative slopes, so a calibration can only rescale costs,
never invert them.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.optimize import nnls

#: Calibration kinds -> the feature names they use (features come from `LutPredictor.features`).
KINDS: dict[str, tuple[str, ...]] = {
    "linear": ("lut",),
    "linear_layers": ("lut", "layers"),
    "blockwise": ("blocks",),
    "blockwise_layers": ("blocks", "layers"),
}
FLOPS_FEATURES = ("mmacs",)


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least relative squared error y ~ intercept + x @ coef, coef >= 0, intercept free."""
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    y = np.asarray(y, dtype=float)
    w = 1.0 / y
    design = np.hstack([x, np.ones((len(y), 1)), -np.ones((len(y), 1))]) * w[:, None]
    sol, _ = nnls(design, np.ones(len(y)), maxiter=50 * design.shape[1])
    return sol[:-2], float(sol[-2] - sol[-1])


def cv_mape(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """K-fold cross-validated mean absolute percentage error of `fit_linear`."""
    n = len(y)
    if n < folds + 2:
        return float("nan")
    order = np.random.default_rng(seed).permutation(n)
    errors = np.empty(n)
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        coef, b = fit_linear(x[train], y[train])
        pred = x[test] @ coef + b
        errors[test] = np.abs(pred - y[test]) / y[test]
    return float(errors.mean())


def fit_calibrations(features: dict[str, np.ndarray], y: Sequence[float]) -> dict[str, Any]:
    """Fit every kind plus the flops cost; select the kind with the lowest cross-validated MAPE
    (a kind with more parameters than a fifth of the samples is not considered)."""
    y = np.asarray(y, dtype=float)
    fits: dict[str, Any] = {}
    for kind, names in list(KINDS.items()) + [("flops", FLOPS_FEATURES)]:
        x = np.hstack([features[n].reshape(len(y), -1) for n in names])
        if x.shape[1] + 1 > max(2, len(y) // 5) and kind not in ("linear", "flops"):
            continue
        coef, intercept = fit_linear(x, y)
        fits[kind] = {"features": list(names), "coef": coef.tolist(), "intercept": intercept,
                      "cv_mape": cv_mape(x, y)}
    candidates = {k: v["cv_mape"] for k, v in fits.items() if k != "flops"}
    finite = {k: v for k, v in candidates.items() if np.isfinite(v)}
    selected = min(finite, key=finite.get) if finite else "linear"
    return {"selected": selected, "fits": fits, "samples": int(len(y))}
