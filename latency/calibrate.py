"""Calibration: map summed per-layer table times to end-to-end latency.

Summing isolated layers misses graph-level effects (per-run overhead, caches that are cold inside
a network, fusion across layer boundaries). We fit small linear models on end-to-end measurements
and keep the one with the lowest cross-validated error. Fits minimise *relative* error (rows
divided by the measured time) with non-negative slopes on costs, so a calibration can only
rescale them, never invert them; the per-layer count's slope is free, since timing layers one by
one pays a per-call overhead once per layer that the whole network pays once.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from scipy.optimize import nnls

#: The per-architecture features a calibration fits on (the lookup-table sum, layers, M
#: multiply-adds, M weights), followed by the table sum at each block position ("blocks").
BASE_FEATURES = ("lut", "layers", "mmacs", "mweights")
#: Calibration kinds -> the feature names they use (features come from `LutPredictor.features`).
KINDS: dict[str, tuple[str, ...]] = {
    "linear": ("lut",),
    "linear_layers": ("lut", "layers"),
    "linear_weights": ("lut", "mweights"),
    "blockwise": ("blocks",),
    "blockwise_layers": ("blocks", "layers"),
}
FLOPS_FEATURES = ("mmacs",)
#: The learned correction needs this many end-to-end samples (fewer: it is not tried).
LEARNED_MIN_SAMPLES = 80
LEARNED_BASE = "linear_layers"
_TREES = {"n_estimators": 200, "max_depth": 2, "learning_rate": 0.05, "subsample": 0.8}


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


def _cv(y: np.ndarray, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
        folds: int, seed: int) -> float:
    """K-fold cross-validated MAPE: `fit_predict(train, test)` fits on the rows `train` and
    predicts the rows `test`."""
    n = len(y)
    if n < folds + 2:
        return float("nan")
    order = np.random.default_rng(seed).permutation(n)
    errors = np.empty(n)
    for f in range(folds):
        test = order[f::folds]
        pred = fit_predict(np.setdiff1d(order, test), test)
        errors[test] = np.abs(pred - y[test]) / y[test]
    return float(errors.mean())


def cv_mape(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0,
            free: Sequence[int] = ()) -> float:
    """K-fold cross-validated mean absolute percentage error of `fit_linear`."""
    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        coef, b = fit_linear(x[train], y[train], free)
        return np.asarray(x[test] @ coef + b)

    return _cv(y, fit_predict, folds, seed)


def fit_trees(x: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """Gradient-boosted regression trees (scikit-learn) as JSON-able arrays for `Trees`."""
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(random_state=0, **_TREES).fit(x, target)
    trees = [{"feature": t.tree_.feature.tolist(), "threshold": t.tree_.threshold.tolist(),
              "left": t.tree_.children_left.tolist(), "right": t.tree_.children_right.tolist(),
              "value": t.tree_.value[:, 0, 0].tolist()} for t in model.estimators_[:, 0]]
    return {"init": float(np.ravel(model.init_.constant_)[0]),
            "learning_rate": float(model.learning_rate), "n_features": int(x.shape[1]),
            "trees": trees}


class Trees:
    """Evaluates `fit_trees` output with numpy: all trees walked at once, level by level (trees
    padded to one node count), in row chunks that keep the arrays small."""

    CHUNK = 2048

    def __init__(self, data: dict[str, Any]) -> None:
        self.init, self.rate = float(data["init"]), float(data["learning_rate"])
        self.n_features = int(data["n_features"])
        trees = data["trees"]
        width = max((len(t["feature"]) for t in trees), default=1)

        def padded(key: str, fill: float, dtype: Any) -> np.ndarray:
            out = np.full((len(trees), width), fill, dtype=dtype)
            for i, t in enumerate(trees):
                out[i, :len(t[key])] = t[key]
            return out

        self.feature = padded("feature", -2, np.int64)
        self.threshold = padded("threshold", 0.0, np.float64)
        self.left, self.right = padded("left", -1, np.int64), padded("right", -1, np.int64)
        self.value = padded("value", 0.0, np.float64)
        self.depth = max((_depth(t["left"], t["right"]) for t in trees), default=0)
        self.tree = np.arange(len(trees))[None, :]

    def predict(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"learned calibration: expected {self.n_features} features, got "
                             f"shape {x.shape}")
        x = x.astype(np.float32)  # scikit-learn's trees split float32 inputs
        out = np.empty(len(x))
        t = self.tree
        for start in range(0, len(x), self.CHUNK):
            xs = x[start:start + self.CHUNK]
            rows = np.arange(len(xs))[:, None]
            node = np.zeros((len(xs), t.shape[1]), dtype=np.int64)
            for _ in range(self.depth):
                f = self.feature[t, node]
                go_left = xs[rows, np.maximum(f, 0)] <= self.threshold[t, node]
                step = np.where(go_left, self.left[t, node], self.right[t, node])
                node = np.where(f >= 0, step, node)
            out[start:start + len(xs)] = self.init + self.rate * self.value[t, node].sum(axis=1)
        return out


def _depth(left: Sequence[int], right: Sequence[int], node: int = 0) -> int:
    if left[node] < 0:
        return 0
    return 1 + max(_depth(left, right, int(left[node])), _depth(left, right, int(right[node])))


def _learned(x: np.ndarray, corr: np.ndarray, y: np.ndarray, free: Sequence[int]
             ) -> tuple[np.ndarray, float, dict[str, Any]]:
    coef, b = fit_linear(x, y, free)
    return coef, b, fit_trees(corr, np.log(y / np.maximum(x @ coef + b, 1e-9)))


def cv_mape_learned(x: np.ndarray, corr: np.ndarray, y: np.ndarray, free: Sequence[int],
                    folds: int = 5, seed: int = 0) -> float:
    """`cv_mape` of the learned kind: base fit and trees refitted on every training fold."""
    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        coef, b, trees = _learned(x[train], corr[train], y[train], free)
        return np.asarray((x[test] @ coef + b) * np.exp(Trees(trees).predict(corr[test])))

    return _cv(y, fit_predict, folds, seed)


def fit_calibrations(features: dict[str, np.ndarray], measured: Sequence[float],
                     correction: np.ndarray | None = None) -> dict[str, Any]:
    """Fit every kind plus the flops cost; select the kind with the lowest cross-validated MAPE
    (a kind with more parameters than a fifth of the samples is not considered; `learned` only
    with `correction` features and at least `LEARNED_MIN_SAMPLES` samples)."""
    y = np.asarray(measured, dtype=float)
    fits: dict[str, Any] = {}
    for kind, names in list(KINDS.items()) + [("flops", FLOPS_FEATURES)]:
        x = np.hstack([features[n].reshape(len(y), -1) for n in names])
        if x.shape[1] + 1 > max(2, len(y) // 5) and kind not in ("linear", "flops"):
            continue
        free = [x.shape[1] - 1] if names[-1] == "layers" else []
        coef, intercept = fit_linear(x, y, free)
        fits[kind] = {"features": list(names), "coef": coef.tolist(), "intercept": intercept,
                      "cv_mape": cv_mape(x, y, free=free)}
    if correction is not None and len(y) >= LEARNED_MIN_SAMPLES and LEARNED_BASE in fits:
        names = KINDS[LEARNED_BASE]
        x = np.hstack([features[n].reshape(len(y), -1) for n in names])
        free = [x.shape[1] - 1]
        coef, intercept, trees = _learned(x, correction, y, free)
        fits["learned"] = {"features": list(names), "coef": coef.tolist(),
                           "intercept": intercept, "trees": trees,
                           "cv_mape": cv_mape_learned(x, correction, y, free)}
    candidates = {k: v["cv_mape"] for k, v in fits.items() if k != "flops"}
    finite = {k: v for k, v in candidates.items() if np.isfinite(v)}
    selected = min(finite, key=lambda k: finite[k]) if finite else "linear"
    return {"selected": selected, "fits": fits, "samples": int(len(y))}


def feature_columns(names: Iterable[str], n_pos: int) -> list[int]:
    """The columns of the feature matrix (`BASE_FEATURES`, then one per block position) that
    feature `names` select."""
    cols: list[int] = []
    for name in names:
        if name == "blocks":
            cols.extend(range(len(BASE_FEATURES), len(BASE_FEATURES) + n_pos))
        else:
            cols.append(BASE_FEATURES.index(name))
    return cols


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _finite_list(value: Any) -> bool:
    return isinstance(value, list) and all(_finite(v) for v in value)


def check_calibration(calibration: Any, n_pos: int) -> str | None:
    """What is wrong with a table's `calibration` (None when it is usable): `selected` names a
    fit (or none), every fit has known feature names, one finite coefficient per column they
    expand to, a finite intercept, and (learned) well-formed trees. Why: a hand-edited or damaged
    calibration otherwise fails inside the first prediction with a TypeError or KeyError."""
    if not isinstance(calibration, dict):
        return f"calibration is {type(calibration).__name__}, expected an object"
    fits = calibration.get("fits", {})
    if not isinstance(fits, dict):
        return "calibration.fits is not an object"
    selected = calibration.get("selected", "none")
    if not isinstance(selected, str) or (selected != "none" and selected not in fits):
        return f"calibration.selected is {selected!r}, not one of its fits"
    known = BASE_FEATURES + ("blocks",)
    for kind, fit in fits.items():
        where = f"calibration.fits.{kind}"
        if not isinstance(fit, dict):
            return f"{where} is not an object"
        names = fit.get("features")
        if not isinstance(names, list) or not names or any(n not in known for n in names):
            return f"{where}.features is {names!r} (expected names from {', '.join(known)})"
        width = len(feature_columns(names, n_pos))
        if not _finite_list(fit.get("coef")) or len(fit["coef"]) != width:
            return f"{where}.coef is {fit.get('coef')!r} (expected {width} finite numbers)"
        if not _finite(fit.get("intercept")):
            return f"{where}.intercept is {fit.get('intercept')!r} (expected a finite number)"
        if fit.get("trees") is not None and not _trees_ok(fit["trees"]):
            return f"{where}.trees is malformed"
    return None


def _trees_ok(data: Any) -> bool:
    if not isinstance(data, dict) or not all(_finite(data.get(k)) for k in
                                             ("init", "learning_rate", "n_features")):
        return False
    trees = data.get("trees")
    return isinstance(trees, list) and all(
        isinstance(t, dict) and all(_finite_list(t.get(k)) for k in
                                    ("feature", "threshold", "left", "right", "value"))
        and len({len(t[k]) for k in ("feature", "threshold", "left", "right", "value")}) == 1
        for t in trees)
