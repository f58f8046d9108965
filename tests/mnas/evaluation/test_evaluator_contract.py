"""The contract every evaluator keeps: evaluate(arch) -> EvalResult with a fraction accuracy and
a status, deterministic, selected by name; and one-line errors for bad inputs."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from mnas.evaluation import EvalResult, Evaluator, as_result, create_evaluator, is_remote
from search_spaces import NasBench201Space

from .conftest import accuracy_of, write_table

SPACE = NasBench201Space()

USER = '''
from mnas.evaluation import EvalResult

class Edges:
    """A user's surrogate: accuracy from the number of conv edges."""
    def __init__(self, space, scale=0.1):
        self.space, self.scale = space, scale
    def evaluate(self, arch):
        n = sum(op.startswith("nor_conv") for op in arch.ops)
        return EvalResult(min(1.0, self.scale * n))

class Bare:
    def evaluate(self, arch):
        return 0.5

class NotOne:
    pass

class Picky:
    def __init__(self, level=-1):
        raise ValueError("level must be positive")
'''


def fake_trainer(arch, config, num_classes=None):
    return {"status": "ok", "accuracy": 0.25, "params": 7, "macs": 9, "wall_time_s": 0.0}


@pytest.fixture()
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"user_eval_{abs(hash(tmp_path)) % 10 ** 8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.fixture(params=["train", "supernet", "table", "custom"])
def evaluated(request, table, user_module):
    """(evaluator, the space it scores)."""
    if request.param == "train":
        from mnas.evaluation.train import TrainEvaluator
        return TrainEvaluator(None, trainer=fake_trainer), SPACE
    if request.param == "supernet":
        from mnas.config.schema import load_config
        from mnas.search.runner import create_evaluator as from_config
        config = load_config(request.getfixturevalue("trained")[0])
        return from_config(config), config.space
    if request.param == "table":
        return create_evaluator("table", space=SPACE, path=str(table),
                                column="cifar10_test"), SPACE
    return create_evaluator(f"{user_module}:Edges", space=SPACE, scale=0.2), SPACE


def test_every_evaluator_returns_a_result_with_accuracy_and_status(evaluated):
    evaluator, space = evaluated
    assert isinstance(evaluator, Evaluator)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        result = evaluator.evaluate(arch)
        assert isinstance(result, EvalResult)
        assert result.status == "ok" and result.error is None
        assert 0.0 <= result.accuracy <= 1.0
        again = evaluator.evaluate(arch)  # deterministic (but for the time it took)
        assert (again.accuracy, again.status) == (result.accuracy, result.status)
        data = result.to_dict()
        assert data["accuracy"] == result.accuracy and data["status"] == "ok"


def test_only_training_and_the_supernet_go_to_the_executor_pool(evaluated):
    evaluator, _ = evaluated
    assert is_remote(evaluator) == (type(evaluator).__name__ in ("TrainEvaluator",
                                                                 "SupernetEvaluator"))
    if is_remote(evaluator):  # the pool calls its trainer: (arch, train_config, num_classes)
        assert callable(evaluator.trainer)


def test_table_evaluator_matches_known_rows(table):
    ev = create_evaluator("table", space=SPACE, path=str(table), column="cifar10_test")
    for actions in [(0,) * 6, (3,) * 6, (1, 2, 3, 4, 0, 1)]:
        assert ev.evaluate(SPACE.decode(actions)).accuracy == pytest.approx(
            accuracy_of(actions) / 100)
    raw = create_evaluator("table", space=SPACE, path=str(table), column="latency_ms_pixel3",
                           percent=False)
    assert raw.evaluate(SPACE.decode((3,) * 6)).accuracy == pytest.approx(12.5)


def test_train_evaluator_wraps_the_trainer():
    from mnas.evaluation.train import TrainEvaluator
    result = TrainEvaluator(None, trainer=fake_trainer).evaluate(SPACE.decode((0,) * 6))
    assert (result.accuracy, result.status, result.extra["params"]) == (0.25, "ok", 7)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"path": "missing.csv", "column": "cifar10_test"}, "evaluator.path: missing.csv does not "
                                                        "exist"),
    ({"column": "cifar10_test"}, "evaluator.path: needs the CSV file"),
    ({"path": "TABLE", "column": "cifar100_test"}, "evaluator.column: 'cifar100_test' is not a "
                                                   "column of"),
    ({"path": "TABLE"}, "evaluator.column: needs the name of a column"),
    ({"path": "TABLE", "column": "cifar10_test", "scale": 2}, "evaluator.kwargs.scale: unknown"),
])
def test_table_evaluator_bad_inputs_are_one_line(table, kwargs, fragment):
    kwargs = {k: (str(table) if v == "TABLE" else v) for k, v in kwargs.items()}
    with pytest.raises(ValueError) as err:
        create_evaluator("table", space=SPACE, **kwargs)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_table_of_another_space_is_a_mismatch(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("arch,cifar10_test\nr1_k3_s11_e1_i32_o16,70.0\n")
    with pytest.raises(ValueError, match="keys architectures of another search space"):
        create_evaluator("table", space=SPACE, path=str(path), column="cifar10_test")


def test_a_missing_row_is_an_error_naming_the_architecture(tmp_path):
    path = write_table(tmp_path / "few.csv", rows=[(0,) * 6, (1,) * 6])
    ev = create_evaluator("table", space=SPACE, path=str(path), column="cifar10_test")
    arch = SPACE.decode((2,) * 6)
    with pytest.raises(ValueError, match=r"no row for architecture '\|nor_conv_1x1~0\|"):
        ev.evaluate(arch)


def test_non_numeric_value_names_the_line(tmp_path):
    path = write_table(tmp_path / "bad.csv", rows=[(0,) * 6])
    path.write_text(path.read_text().replace(",44.0,", ",n/a,"))
    with pytest.raises(ValueError, match="line 2: cifar10_test is 'n/a'"):
        create_evaluator("table", space=SPACE, path=str(path), column="cifar10_test")


@pytest.mark.parametrize("attr, fragment", [
    ("Nope", "has no attribute 'Nope'"),
    ("NotOne", "does not satisfy Evaluator"),
    ("Picky", "level must be positive"),
])
def test_custom_evaluator_errors_name_the_key(user_module, attr, fragment):
    with pytest.raises(ValueError) as err:
        create_evaluator(f"{user_module}:{attr}", space=SPACE)
    assert str(err.value).startswith("evaluator.name: ") and fragment in str(err.value)
    with pytest.raises(ValueError, match="evaluator.name: cannot import 'no_such_mod_x'"):
        create_evaluator("no_such_mod_x:Thing", space=SPACE)


def test_bare_numbers_and_mappings_become_results(user_module):
    ev = create_evaluator(f"{user_module}:Bare", space=SPACE)
    assert as_result(ev.evaluate(None)) == EvalResult(0.5)
    assert as_result({"accuracy": 0.3, "status": "ok", "params": 4}).extra == {"params": 4}
    with pytest.raises(ValueError, match="expected an EvalResult"):
        as_result("high")


def test_unknown_builtin_name():
    with pytest.raises(ValueError, match="evaluator.name: 'oracle' is not one of"):
        create_evaluator("oracle", space=SPACE)


def test_training_needs_the_mnasnet_space():
    with pytest.raises(ValueError, match="'train' trains mnasnet-space children"):
        create_evaluator("train", space=SPACE)
