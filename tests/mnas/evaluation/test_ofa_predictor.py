"""The ofa_predictor evaluator: OFA's feature layout, the numpy MLP against a direct
computation on a tiny predictor written here, bad inputs, and the published 81.71%."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mnas.evaluation import EvalResult, Evaluator, create_evaluator
from mnas.evaluation.ofa_predictor import ofa_features
from search_spaces import NasBench201Space, OfaArch, OfaMobileNetV3Space

SPACE = OfaMobileNetV3Space()
SHARED = Path(os.environ.get("MNAS_SHARED", Path(__file__).resolve().parents[4] / "shared"))
NPZ = SHARED / "data" / "nas-benchmarks" / "ofa-note10" / "acc_predictor.npz"
TUTORIAL = OfaArch(192, (2, 2, 3, 4, 3), (5, 3, 5, 3, 7, 7, 3, 5, 5, 7, 3, 3, 3, 5),
                   (3, 3, 4, 4, 6, 3, 4, 4, 4, 4, 3, 6, 6, 6))


@pytest.fixture()
def npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    sizes = [(16, 128), (16, 16), (16, 16), (1, 16)]
    arrays = {}
    for name, (out, inp) in zip("0246", sizes):
        arrays[f"{name}_weight"] = rng.normal(0, 0.3, (out, inp))
        arrays[f"{name}_bias"] = rng.normal(0, 0.1, out)
    path = tmp_path / "acc.npz"
    np.savez(path, **arrays)
    return path


def test_features_follow_ofas_layout():
    x = ofa_features(TUTORIAL)
    assert x.shape == (128,) and set(np.unique(x)) == {0.0, 1.0}
    assert x[:60].sum() == 14 and x[60:120].sum() == 14 and x[120:].sum() == 1
    assert list(x[0:3]) == [0, 1, 0]  # stage 1 slot 1: kernel 5
    assert list(x[6:12]) == [0] * 6  # stage 1 slots 3-4: beyond depth 2
    assert list(x[60:63]) == [1, 0, 0]  # stage 1 slot 1: expand 3
    assert x[120 + (192 - 112) // 16] == 1


def test_mlp_matches_a_direct_computation(npz):
    ev = create_evaluator("ofa_predictor", space=SPACE, path=str(npz))
    assert isinstance(ev, Evaluator) and not getattr(ev, "remote", False)
    data = np.load(npz)
    rng = np.random.default_rng(1)
    for _ in range(10):
        arch = SPACE.sample(rng)
        h = ofa_features(arch)
        for i, n in enumerate("0246"):
            h = data[f"{n}_weight"] @ h + data[f"{n}_bias"]
            h = np.maximum(h, 0) if i < 3 else h
        result = ev.evaluate(arch)
        assert isinstance(result, EvalResult) and result.status == "ok"
        assert result.accuracy == pytest.approx(float(h[0]))


@pytest.mark.parametrize("case, fragment", [
    ("missing", "evaluator.path: "),
    ("none", "evaluator.path: needs OFA's acc_predictor.npz"),
    ("not_npz", "is not OFA's accuracy predictor"),
    ("space", "'ofa_predictor' scores the ofa_mobilenetv3 space only"),
    ("column", "evaluator.column: not used by evaluator 'ofa_predictor'"),
])
def test_bad_inputs(tmp_path, npz, case, fragment):
    kwargs = {"space": SPACE, "path": str(npz)}
    if case == "missing":
        kwargs["path"] = str(tmp_path / "nope.npz")
    elif case == "none":
        kwargs["path"] = None
    elif case == "not_npz":
        (tmp_path / "x.npz").write_bytes(b"not a zip")
        kwargs["path"] = str(tmp_path / "x.npz")
    elif case == "space":
        kwargs["space"] = NasBench201Space()
    else:
        kwargs["column"] = "acc"
    with pytest.raises(ValueError) as err:
        create_evaluator("ofa_predictor", **kwargs)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(not NPZ.exists(), reason=f"shared data absent ({NPZ})")
def test_tutorial_network_predicts_81_71_percent():
    ev = create_evaluator("ofa_predictor", space=SPACE, path=str(NPZ))
    assert round(100 * ev.evaluate(TUTORIAL).accuracy, 2) == 81.71
    biggest = OfaArch(224, (4,) * 5, (7,) * 20, (6,) * 20)
    smallest = OfaArch(160, (2,) * 5, (3,) * 10, (3,) * 10)
    assert round(100 * ev.evaluate(biggest).accuracy, 2) == 83.59
    assert round(100 * ev.evaluate(smallest).accuracy, 2) == 75.31
