"""Every section is a typed dataclass checked by the one loader: a bad value in `latency.kwargs`
(each built-in predictor's options), `evaluator.kwargs`, `supernet`, `search_space` (each space)
or a controller's options stops `mnas search` with one line naming the file and the key path
(exit 2); a custom `pkg.module:Name` keeps free-form kwargs for its own code to check."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from latency.options import CsvColumnOptions, LayerTableOptions, LutOptions
from mnas.cli import main
from mnas.config.schema import config_from_dict, config_to_dict
from mnas.evaluation import TableOptions


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("data, key", [
    ({"latency": {"kwargs": {"profiler": {"runs": -1}}}}, "latency.kwargs.profiler.runs"),
    ({"latency": {"kwargs": {"runs": -1}}}, "latency.kwargs.runs"),
    ({"latency": {"kwargs": {"build": {"passes": 0}}}}, "latency.kwargs.build.passes"),
    ({"latency": {"kwargs": {"reanchor": "sometimes"}}}, "latency.kwargs.reanchor"),
    ({"latency": {"predictor": "measured", "kwargs": {"profiler": {"statistic": "p99"}}}},
     "latency.kwargs.profiler.statistic"),
    ({"latency": {"predictor": "flops", "kwargs": {"ms_per_mmac": "fast"}}},
     "latency.kwargs.ms_per_mmac"),
    ({"latency": {"predictor": "ofa_yaml", "kwargs": {"feature_mix": 0}}},
     "latency.kwargs.feature_mix"),
    ({"latency": {"predictor": "csv_column", "kwargs": {"colum": "x"}}}, "latency.kwargs.colum"),
    ({"evaluator": {"name": "table", "kwargs": {"percent": "yes"}}}, "evaluator.kwargs.percent"),
    ({"evaluator": {"name": "train", "kwargs": {"lr": 0.1}}}, "evaluator.kwargs.lr"),
    ({"supernet": {"epochs": -1}}, "supernet.epochs"),
    ({"supernet": {"val_images": 0}}, "supernet.val_images"),
    ({"search_space": {"name": "ofa_mobilenetv3", "num_classes": 0}}, "search_space.num_classes"),
    ({"search_space": {"name": "ofa_mobilenetv3", "depth": [2]}}, "search_space.depth"),
    ({"search_space": {"name": "nasbench201", "ops": 3}}, "search_space.ops"),
    ({"search_space": {"base": [{"kernel": 3}]}}, "search_space.base[0]"),
    ({"controller": {"advantage": "greedy"}}, "controller.advantage"),
    ({"controller": {"top_fraction": 1.5}}, "controller.top_fraction"),
    ({"controller": {"rank_window": 0}}, "controller.rank_window"),
    ({"controller": {"baseline_decay": 1.0}}, "controller.baseline_decay"),
    ({"controller": {"name": "evolution", "sample_size": 200}}, "controller.sample_size"),
])
def test_bad_value_is_one_line_naming_file_and_key_exit_2(tmp_path, capsys, data, key):
    path = _write(tmp_path, data)
    assert main(["search", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{path}: {key}" in err, err
    assert not (tmp_path / "run").exists()


def test_builtin_kwargs_load_as_their_dataclass_and_round_trip():
    for latency, cls in (({"predictor": "lut", "kwargs": {"reanchor": False}}, LutOptions),
                         ({"predictor": "csv_column", "kwargs": {"column": "ms"}},
                          CsvColumnOptions),
                         ({"predictor": "proxyless_yaml"}, LayerTableOptions)):
        config = config_from_dict({"latency": latency})
        assert isinstance(config.latency.kwargs, cls)
        assert config_from_dict(config_to_dict(config)) == config
    config = config_from_dict({"evaluator": {"name": "table", "kwargs": {"percent": False}}})
    assert config.evaluator.kwargs == TableOptions(percent=False)


def test_custom_classes_keep_free_form_kwargs():
    config = config_from_dict({"latency": {"predictor": "my.pkg:Pred", "kwargs": {"x": [1, 2]}},
                               "evaluator": {"name": "my.pkg:Eval", "kwargs": {"y": "z"}}})
    assert config.latency.kwargs == {"x": [1, 2]} and config.evaluator.kwargs == {"y": "z"}
    with pytest.raises(ValueError, match="latency.kwargs: expected a mapping"):
        config_from_dict({"latency": {"predictor": "my.pkg:Pred", "kwargs": 5}})


def test_loading_a_config_does_not_import_onnxruntime():
    """The latency options live beside the predictors, but onnxruntime stays at the edge."""
    import subprocess
    import sys

    code = ("import sys; from mnas.config.schema import config_from_dict; config_from_dict({}); "
            "print('onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_options_given_to_a_component_without_options_say_so(tmp_path, capsys):
    path = _write(tmp_path, {"evaluator": {"name": "train", "kwargs": {"lr": 0.1}}})
    assert main(["search", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "evaluator.kwargs.lr: unknown key (evaluator.kwargs takes no options here)" in err, err
