"""Shared fixtures: a tiny search space (22 table entries, 256 architectures), a real profiler
with few runs, and one table built once per session, so the suite takes seconds."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torch

from latency.keys import Entry, head_key, layer_key, stem_key
from mnas.config.loader import to_plain
from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec, out_size

TINY: dict[str, Any] = {
    "input_size": 16, "num_classes": 10, "stem_filters": 8, "stem_stride": 1,
    "head_filters": 32, "width_divisor": 4, "ops": ["dconv", "mbconv3"], "kernels": [3, 5],
    "se_ratios": [0.0], "skips": ["none", "identity"], "filter_multipliers": [1.0],
    "layer_deltas": [0, 1],
    "base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 8, "layers": 1},
             {"kernel": 3, "stride": 2, "expansion": 6, "filters": 12, "layers": 1}],
}
#: Few runs and no pinning: tests check behaviour, not precise timings (and leave the pinned
#: core to whatever else is timing on this shared machine).
FAST = {"warmup": 1, "runs": 3, "rounds": 2, "pin": False}
TINY_BUILD = {"calibration_samples": 12, "chunk": 8, "canary": False}


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """ONNX export of tiny layers gains nothing from more threads on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_space() -> MnasNetSpace:
    return MnasNetSpace.from_dict(TINY)


@pytest.fixture(scope="session")
def fast_profiler() -> Any:
    from latency import make_profiler
    return make_profiler(FAST)


@pytest.fixture(scope="session")
def tiny_table_path(tmp_path_factory: pytest.TempPathFactory, fast_profiler: Any) -> Path:
    """A complete, calibrated table of the tiny space (built once, read-only for tests)."""
    from latency.build import build_table
    from latency.options import BuildOptions
    from mnas.config.loader import load_section
    path = tmp_path_factory.mktemp("lut") / "tiny.json"
    build_table(MnasNetSpace.from_dict(TINY), fast_profiler, path,
                load_section(BuildOptions, TINY_BUILD), progress=False)
    return path


class FakeProfiler:
    """Deterministic stand-in for `Profiler`: ms from the graph's bytes; counts every call per
    graph (short graphs are names, see test_build's fixture)."""

    def __init__(self, tag: str = "fake") -> None:
        from latency.options import ProfilerConfig
        self.config = ProfilerConfig(**FAST)
        self.tag = tag
        self.calls: dict[str, int] = {}

    def measure(self, onnx_bytes: bytes) -> Any:
        from latency.profiler import Measurement
        name = onnx_bytes.decode() if len(onnx_bytes) < 200 else \
            hashlib.sha256(onnx_bytes).hexdigest()
        self.calls[name] = self.calls.get(name, 0) + 1
        return Measurement(ms=0.01 + len(onnx_bytes) / 1e7, spread=0.01)

    def measure_many(self, graphs: list[bytes]) -> list[Any]:
        return [self.measure(g) for g in graphs]

    def provenance(self) -> dict[str, Any]:
        return {"onnxruntime": "fake", "provider": "CPUExecutionProvider", "threads": 1,
                "cpu": self.tag, "batch": 1, "profiler": to_plain(self.config),
                "date": "2026-01-01T00:00:00Z"}


def sample_archs(space: MnasNetSpace, n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


@pytest.fixture
def fake_profiler_cls() -> type:
    return FakeProfiler


@pytest.fixture
def tiny_dict() -> dict[str, Any]:
    import copy
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_build() -> dict[str, Any]:
    return dict(TINY_BUILD)


@pytest.fixture
def tiny_config(tmp_path: Path, tiny_dict: dict[str, Any]) -> Path:
    """An experiment YAML of the tiny space with the session table's profiler and build."""
    import yaml
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "search_space": tiny_dict,
        "latency": {"predictor": "lut", "kwargs": {"profiler": FAST, "build": TINY_BUILD}}}))
    return path


@pytest.fixture
def tiny_archs(tiny_space: MnasNetSpace) -> list[Any]:
    return sample_archs(tiny_space, 6, seed=3)


def arch_entries(arch: ArchSpec, input_size: int, classes: int, in_channels: int = 3
                 ) -> list[Entry]:
    """The entries one architecture uses, in network order (stem, layers, head): an oracle
    walked independently of the predictors' own row cache."""
    res = out_size(input_size, arch.stem_stride)
    out = [Entry(stem_key(in_channels, arch.stem_filters, arch.stem_stride, input_size), "stem",
                 input_size, in_channels, out_filters=arch.stem_filters, stride=arch.stem_stride)]
    for spec in arch.layers():
        out.append(Entry(layer_key(spec, res), "layer", res, spec.in_filters, spec=spec))
        res = out_size(res, spec.stride)
    last = arch.blocks[-1].out_filters
    out.append(Entry(head_key(last, arch.head_filters, classes, res), "head", res, last,
                     out_filters=arch.head_filters, classes=classes))
    return out


@pytest.fixture(name="arch_entries")
def arch_entries_fixture() -> Any:
    return arch_entries
