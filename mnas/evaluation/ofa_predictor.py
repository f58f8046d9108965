"""The `ofa_predictor` evaluator: Once-for-All's ImageNet top-1 accuracy predictor (an MLP
128 -> 400 -> 400 -> 400 -> 1 with ReLU between layers), evaluated with numpy from the arrays in
`acc_predictor.npz` (no torch, no pickles).

Features (128): per layer slot (stage s, slot j; 20 slots) a one-hot of its kernel (3, 5, 7),
zeros beyond the stage's depth; the same for the expand ratio (3, 4, 6); then a one-hot of the
resolution at index (r - 112) / 16 (8 entries).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import EvalResult

if TYPE_CHECKING:
    from search_spaces.interface import SearchSpace
    from search_spaces.ofa import OfaArch

_KERNELS, _EXPANDS, _SLOTS = (3, 5, 7), (3, 4, 6), 4
_LAYERS = ("0", "2", "4", "6")


def ofa_features(arch: OfaArch) -> np.ndarray:
    """The predictor's 128 inputs for an `OfaArch`."""
    stages = len(arch.depths)
    kernels = np.zeros((stages, _SLOTS, 3))
    expands = np.zeros((stages, _SLOTS, 3))
    i = 0
    for s, depth in enumerate(arch.depths):
        for j in range(depth):
            kernels[s, j, _KERNELS.index(arch.kernels[i])] = 1.0
            expands[s, j, _EXPANDS.index(arch.expands[i])] = 1.0
            i += 1
    resolution = np.zeros(8)
    resolution[(arch.resolution - 112) // 16] = 1.0
    return np.concatenate([kernels.ravel(), expands.ravel(), resolution])


class OfaPredictorEvaluator:
    """Predicted ImageNet top-1 (a fraction) of OFA MobileNetV3 networks."""

    remote = False

    def __init__(self, space: SearchSpace[Any], path: str | None) -> None:
        from search_spaces.ofa import OfaMobileNetV3Space

        if not isinstance(space, OfaMobileNetV3Space):
            raise ValueError("evaluator.name: 'ofa_predictor' scores the ofa_mobilenetv3 space "
                             f"only (search_space.name is {type(space).__name__})")
        if not path:
            raise ValueError("evaluator.path: needs OFA's acc_predictor.npz")
        file = Path(path)
        if not file.is_file():
            raise ValueError(f"evaluator.path: {file} does not exist")
        try:
            with np.load(file, allow_pickle=False) as data:
                self.layers = [(np.asarray(data[f"{n}_weight"], float),
                                np.asarray(data[f"{n}_bias"], float)) for n in _LAYERS]
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"evaluator.path: {file} is not OFA's accuracy predictor "
                             f"(arrays 0_weight ... 6_bias: {exc})") from None
        if self.layers[0][0].shape[1] != 128 or self.layers[-1][0].shape[0] != 1:
            raise ValueError(f"evaluator.path: {file}: expected a 128 -> ... -> 1 MLP, got "
                             f"{self.layers[0][0].shape[1]} inputs")

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Accuracy for each row of `features` (N x 128)."""
        x = np.atleast_2d(features)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w.T + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return x[:, 0]

    def evaluate(self, arch: OfaArch) -> EvalResult:
        return EvalResult(float(self.predict(ofa_features(arch))[0]))
