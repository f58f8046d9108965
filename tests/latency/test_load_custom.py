"""Custom predictors named by dotted path: loading, kwargs, and one-line errors naming the path."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from latency import LatencyPredictor, create_predictor, load_custom
from search_spaces.space import MnasNetSpace

MODULE = '''
import numpy as np

class Constant:
    """Takes neither space nor table: they are not passed."""
    def __init__(self, ms=1.5):
        self.ms = ms
    def predict(self, arch):
        return float(self.ms)
    def predict_many(self, archs):
        return np.full(len(archs), float(self.ms))

class WantsAll:
    def __init__(self, space, table=None, **kw):
        self.space, self.table, self.kw = space, table, kw
    def predict(self, arch):
        return 1.0
    def predict_many(self, archs):
        return np.ones(len(archs))

class NoMany:
    def predict(self, arch):
        return 1.0

class Picky:
    def __init__(self, scale):
        if scale <= 0:
            raise ValueError("scale must be > 0")

INSTANCE = Constant(2.0)
NOT_A_PREDICTOR = 42
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"user_lat_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "broken_lat_mod.py").write_text("raise RuntimeError('boom\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_loads_class_with_kwargs(user_module: str, tiny_space: MnasNetSpace) -> None:
    p = create_predictor(f"{user_module}:Constant", space=tiny_space, table="t.json", ms=3.0)
    assert isinstance(p, LatencyPredictor)
    arch = tiny_space.sample(np.random.default_rng(0))
    assert p.predict(arch) == 3.0
    np.testing.assert_array_equal(p.predict_many([arch, arch]), [3.0, 3.0])


def test_space_and_table_passed_when_named(user_module: str, tiny_space: MnasNetSpace) -> None:
    p = load_custom(f"{user_module}:WantsAll", space=tiny_space, table="t.json", extra=1)
    assert p.space is tiny_space and p.table == "t.json" and p.kw == {"extra": 1}


def test_instance_used_as_is(user_module: str, tiny_space: MnasNetSpace) -> None:
    p = load_custom(f"{user_module}:INSTANCE", space=tiny_space)
    assert p.predict(tiny_space.sample(np.random.default_rng(0))) == 2.0


@pytest.mark.parametrize("path, message", [
    ("no_such_pkg_xyz.lat:Thing", "cannot import 'no_such_pkg_xyz.lat'"),
    ("latency.nope:Thing", "cannot import 'latency.nope'"),
    ("{mod}:Missing", "has no attribute 'Missing'"),
    ("{mod}:NoMany", "does not satisfy LatencyPredictor"),
    ("{mod}:NOT_A_PREDICTOR", "does not satisfy LatencyPredictor"),
    ("broken_lat_mod:X", "importing 'broken_lat_mod' .* failed: RuntimeError: boom"),
    ("{mod}", "not a dotted path"),
    (":Thing", "not a dotted path"),
])
def test_errors_are_one_line_naming_the_path(user_module: str, tiny_space: MnasNetSpace,
                                             path: str, message: str) -> None:
    path = path.format(mod=user_module)
    with pytest.raises(ValueError, match=message) as info:
        load_custom(path, space=tiny_space)
    text = str(info.value)
    assert "\n" not in text and text.startswith("latency.predictor:")
    assert path in text or path.partition(":")[0] in text


def test_rejected_kwargs(user_module: str, tiny_space: MnasNetSpace) -> None:
    with pytest.raises(ValueError, match=r"Constant' rejected its kwargs: .*'speed'"):
        load_custom(f"{user_module}:Constant", space=tiny_space, speed=1)
    with pytest.raises(ValueError, match=r"Picky': scale must be > 0"):
        load_custom(f"{user_module}:Picky", space=tiny_space, scale=-1)


def test_example_kwargs_validated(tiny_space: MnasNetSpace) -> None:
    with pytest.raises(ValueError, match="latency.kwargs.ms_per_mmac"):
        load_custom("latency.examples:MacsParamsPredictor", space=tiny_space, ms_per_mmac=-1)
