"""`mnas baselines`: every reference at its published widths, timed, tabled, plotted; optional
training with a config's recipe, resumed from trained.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnas.cli import main
from mnas.commands.baselines import baseline_models, kendall_tau

FAST = ["--rounds", "1", "--runs", "2", "--warmup", "1", "--quiet"]
CONFIG = """\
child_training:
  data: {name: synthetic, synthetic_samples: 64, num_classes: 3, input_size: 16}
  epochs: 1
  batch_size: 16
  lr: 0.05
  schedule: constant
  warmup_epochs: 0
  threads: 1
"""


def test_every_family_at_its_published_widths() -> None:
    rows = baseline_models(None, stem_stride=2)
    names = {r["name"] for r in rows}
    assert {"mobilenet_v1@0.25", "mobilenet_v1", "shufflenet_v2@0.5", "shufflenet_v2@2",
            "ghostnet", "squeezenet1_1", "efficientnet_b0", "mobilenet_v2@0.35",
            "mnasnet_a1@1.4"} <= names
    assert len(names) == len(rows)
    with pytest.raises(ValueError, match="--families: unknown family 'resnet50'"):
        baseline_models(["resnet50"], stem_stride=2)


def test_baselines_table_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "b"
    assert main(["baselines", "--families", "shufflenet_v2,squeezenet1_1", "--out", str(out),
                 *FAST]) == 0
    text = capsys.readouterr().out
    assert "shufflenet_v2@0.5" in text and "squeezenet1_1" in text and "Kendall tau" in text
    result = json.loads((out / "baselines.json").read_text())
    assert result["input_size"] == 32 and len(result["models"]) == 5
    for row in result["models"]:
        assert row["latency_ms"] > 0 and row["macs"] > 0 and row["accuracy"] is None
    sq = next(r for r in result["models"] if r["name"] == "squeezenet1_1")
    assert sq["params"] == 1_235_496
    assert (out / "baselines.png").stat().st_size > 5000


def test_baselines_train_appends_and_resumes(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "b"
    args = ["baselines", "--families", "shufflenet_v2", "--stem-stride", "1", "--input-size",
            "16", "--train", str(config), "--out", str(out), *FAST]
    assert main(args) == 0
    lines = (out / "trained.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["status"] == "ok" for line in lines)
    models = json.loads((out / "baselines.json").read_text())["models"]
    assert all(0 <= m["accuracy"] <= 1 for m in models)
    assert main(args) == 0  # a rerun reuses every trained model
    assert len((out / "trained.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("argv,message", [
    (["--families", "nope"], "unknown family 'nope'"),
    (["--input-size", "0"], "must be positive"),
    (["--train", "missing.yaml"], "missing.yaml"),
])
def test_bad_input_is_one_line(argv: list[str], message: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:
    assert main(["baselines", "--out", str(tmp_path / "b"), *argv, *FAST]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_kendall_tau() -> None:
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
