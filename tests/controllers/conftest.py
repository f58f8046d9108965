"""Shared fixtures for the controller tests: the real space and a stand-in latency predictor."""
from __future__ import annotations

import numpy as np
import pytest

from search_spaces import ArchSpec, MnasNetSpace


class FakePredictor:
    """Pseudo-latency (ms) from block widths, depths, kernels and expansions; counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.archs = 0

    def predict(self, arch: ArchSpec) -> float:
        return sum(b.repeats * b.out_filters * b.kernel ** 2 * b.expansion
                   for b in arch.blocks) / 1000.0

    def predict_many(self, archs: list[ArchSpec]) -> np.ndarray:
        self.calls += 1
        self.archs += len(archs)
        return np.array([self.predict(a) for a in archs])


@pytest.fixture(scope="session")
def space() -> MnasNetSpace:
    return MnasNetSpace()


@pytest.fixture()
def predictor() -> FakePredictor:
    return FakePredictor()


@pytest.fixture()
def target_ms() -> float:
    """About the median pseudo-latency of uniform samples (about 12% fall in the default band)."""
    return 70.0


@pytest.fixture()
def make(space, predictor, target_ms):
    """make(name, seed=0, **kwargs) -> a controller of the default space via the factory."""
    from controllers import create_controller

    def _make(name: str, seed: int = 0, **kwargs):
        return create_controller(name, space, seed=seed, predictor=predictor,
                                 target_ms=target_ms, **kwargs)
    return _make
