"""A whole `mnas search` on a table: no Ray, history, TensorBoard, Pareto plot, resume, export,
and bad inputs as one line with exit 2 before anything is written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mnas.cli import main
from mnas.search.history import load_history

from .conftest import accuracy_of


def _config(tmp_path: Path, table: Path, **changes) -> Path:
    data = {
        "name": "nb201", "seed": 0, "search_space": {"name": "nasbench201"},
        "evaluator": {"name": "table", "path": str(table), "column": "cifar10_test"},
        "latency": {"predictor": "csv_column", "table": str(table),
                    "kwargs": {"column": "latency_ms_pixel3"}, "target_ms": 6.0},
        "reward": {"preset": "hard"}, "controller": {"name": "rnn"},
        "budget": {"children": 300, "batch": 10}, "output": {"dir": str(tmp_path / "runs")},
    }
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    path = tmp_path / "nb201.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_table_search_records_history_plot_tensorboard_and_exports(tmp_path, table, capsys):
    config = _config(tmp_path, table)
    run = tmp_path / "run"
    assert main(["search", str(config), "--run-dir", str(run), "--no-progress"]) == 0
    records = load_history(run / "history.jsonl")
    assert len(records) == 300 and all(r.status == "ok" for r in records)
    from search_spaces import NasBench201Space
    space = NasBench201Space()
    for r in records[:20]:
        actions = space.encode(space.from_strings(list(r.arch)))
        assert list(r.actions) == actions
        assert r.accuracy == pytest.approx(accuracy_of(actions) / 100)
        assert r.worker in ("local", None)
    assert (run / "pareto.png").exists() and any((run / "tb").iterdir())
    capsys.readouterr()
    assert main(["export", str(run), "--format", "json", "--top", "2"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries[0]["space"] == "nasbench201" and entries[0]["arch"][0].startswith("|")
    # resume with a larger budget continues the same history
    assert main(["search", str(config), "--run-dir", str(run), "--resume", "--no-progress",
                 "--set", "budget.children=350"]) == 0
    again = load_history(run / "history.jsonl")
    assert len(again) == 350 and sorted(r.index for r in again) == list(range(350))


@pytest.mark.parametrize("changes, fragment", [
    ({"evaluator__path": "MISSING"}, "evaluator.path: "),
    ({"evaluator__column": "cifar11_test"}, "evaluator.column: 'cifar11_test' is not a column"),
    ({"latency__kwargs": {"column": "latency_ms_pixel9"}},
     "latency.kwargs.column: 'latency_ms_pixel9' is not a column"),
    ({"latency__table": "MISSING"}, "latency.table: "),
    ({"latency__predictor": "lut", "latency__kwargs": {}},
     "latency.predictor: 'lut' prices mnasnet-space"),
    ({"latency__predictor": "lut"}, "latency.kwargs.column: unknown key"),
    ({"search_space__name": "mnasnet"}, "keys architectures of another search space"),
])
def test_bad_inputs_exit_2_with_one_line(tmp_path, table, capsys, changes, fragment):
    changes = {k: (str(tmp_path / "nope.csv") if v == "MISSING" else v)
               for k, v in changes.items()}
    config = _config(tmp_path, table, **changes)
    run = tmp_path / "run"
    assert main(["search", str(config), "--run-dir", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(config) in err and fragment in err, err
    assert not run.exists()
