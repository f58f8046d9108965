"""Issue 20: inputs to `mnas train`, `export`, `describe` and `latency` that ended in a traceback
(exit 1) now end in one line naming the file, flag or value (exit 2), before any long work."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from mnas.cli import main

TINY = ["r1_k3_s11_e1_i8_o8", "r1_k3_s22_e3_i8_o16_se0.25"]
CONFIG = """\
search_space: {stem_stride: 1, input_size: 8, num_classes: 3}
child_training:
  data: {name: synthetic, synthetic_samples: 60, num_classes: 3, input_size: 8}
  epochs: 1
  batch_size: 16
  threads: 1
"""


@pytest.fixture()
def config(tmp_path: Path) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    return str(path)


def _one_line(capsys: pytest.CaptureFixture[str], command: str, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mnas {command}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("damage", ["truncated", "not a checkpoint"])
def test_train_resume_with_a_damaged_checkpoint(config: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                damage: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    ckpt = out / "checkpoint.pt"
    if damage == "truncated":
        torch.save({"trainer": {"step": torch.zeros(1000)}, "meta": "{}"}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:2000])
    else:
        torch.save({"something": "else"}, ckpt)
    assert main(["train", *TINY, "--config", config, "--out", str(out), "--quiet",
                 "--resume"]) == 2
    line = _one_line(capsys, "train", str(ckpt))
    assert "weights_only" not in line


@pytest.mark.parametrize("epochs", ["inf", "nan", "-1"])
def test_train_epochs_must_be_finite(config: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], epochs: str) -> None:
    assert main(["train", *TINY, "--config", config, "--out", str(tmp_path / "out"), "--quiet",
                 "--epochs", epochs]) == 2
    _one_line(capsys, "train", "--epochs")
    assert not (tmp_path / "out").exists()


def test_train_out_naming_a_file(config: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("keep me")
    assert main(["train", *TINY, "--config", config, "--out", str(tmp_path / "taken"),
                 "--quiet"]) == 2
    _one_line(capsys, "train", "--out", "not a directory")
    assert (tmp_path / "taken").read_text() == "keep me"


def test_export_onnx_naming_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (tmp_path / "taken").write_text("keep me")
    assert main(["export", str(run_dir), "--onnx", str(tmp_path / "taken")]) == 2
    _one_line(capsys, "export", "--onnx", "not a directory")
    assert (tmp_path / "taken").read_text() == "keep me"


@pytest.mark.parametrize("argv, fragment", [
    (["describe", "mobilenet_v2@1e6"], "width multiplier must be at most"),
    (["describe", "mnasnet_a1", "--input-size", "100000"], "--input-size: at most"),
    (["latency", "measure", "mnasnet_a1", "--input-size", "100000"], "--input-size: at most"),
    (["latency", "measure", "mobilenet_v2@1e6"], "width multiplier must be at most"),
], ids=["describe width", "describe input", "measure input", "measure width"])
def test_models_too_big_to_build(argv: list[str], fragment: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    _one_line(capsys, argv[0], fragment)


@pytest.mark.parametrize("where", ["under a file", "a directory"])
def test_validate_json_path_is_checked_before_measuring(
        config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    (tmp_path / "afile").write_text("")
    target = tmp_path / "afile" / "x.json" if where == "under a file" else tmp_path
    start = time.perf_counter()
    # the table does not exist: only a check made before loading it can name --json
    assert main(["latency", "validate", config, "--lut", str(tmp_path / "none.json"),
                 "--json", str(target), "--no-progress"]) == 2
    _one_line(capsys, "latency", "--json")
    assert time.perf_counter() - start < 30
