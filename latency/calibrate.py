"""Calibration: map summed per-layer table times to end-to-end latency.

Summing isolated layers misses graph-level effects (per-run overhead, caches that are cold inside
a network, fusion across layer boundaries). We fit small linear models on end-to-end measurements
and keep the one with the lowest cross-validated error. Fits minimise *relative* error (rows
divided by the measured time) with non-negative slopes on costs, so a calibration can only
rescale them, never invert them; the per-layer count's slope is free, since timing layers one by
one pays a per-call overhead once per layer that the whole network pays once.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.optimize import nnls

#: Calibration kinds -> the feature names they use (features come from `LutPredictor.features`).
KINDS: dict[str, tuple[str, ...]] = {
    "linear": ("lut",),
    "linear_layers": ("lut", "layers"),
    "linear_weights": ("lut", "mweights"),
    "blockwise": ("blocks",),
    "blockwise_layers": ("blocks", "layers"),
}
FLOPS_FEATURES = ("mmacs",)


def fit_linear(x: np.ndarray, y: np.ndarray, free: Sequence[int] = ()
               ) -> tuple[np.ndarray, float]:
    """Least relative squared error y ~ intercept + x @ coef, coef >= 0 except the columns in
    `free`; intercept free (free terms are fitted as a difference of two non-negative ones)."""
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    y = np.asarray(y, dtype=float)
    w = 1.0 / y
    k, free = x.shape[1], list(free)
    design = np.hstack([x, -x[:, free], np.ones((len(y), 1)), -np.ones((len(y), 1))])
    sol, _ = nnls(design * w[:, None], np.ones(len(y)), maxiter=50 * design.shape[1])
    coef = sol[:k].copy()
    coef[free] -= sol[k:k + len(free)]
    return coef, float(sol[-2] - sol[-1])


def cv_mape(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0,
            free: Sequence[int] = ()) -> float:
    """K-fold cross-validated mean absolute percentage error of `fit_linear`."""
    n = len(y)
    if n < folds + 2:
        return float("nan")
    order = np.random.default_rng(seed).permutation(n)
    errors = np.empty(n)
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        coef, b = fit_linear(x[train], y[train], free)
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
        free = [x.shape[1] - 1] if names[-1] == "layers" else []
        coef, intercept = fit_linear(x, y, free)
        fits[kind] = {"features": list(names), "coef": coef.tolist(), "intercept": intercept,
                      "cv_mape": cv_mape(x, y, free=free)}
    candidates = {k: v["cv_mape"] for k, v in fits.items() if k != "flops"}
    finite = {k: v for k, v in candidates.items() if np.isfinite(v)}
    selected = min(finite, key=finite.get) if finite else "linear"
    return {"selected": selected, "fits": fits, "samples": int(len(y))}
