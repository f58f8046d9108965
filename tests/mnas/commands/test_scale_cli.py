"""`mnas scale`: one scaled network (printed, written as an export .json that every command
reads back) and the alpha/beta/gamma grid search at phi = 1 (resumable)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnas.cli import main
from mnas.architectures import resolve_arch
from search_spaces import build_model, count_params

CONFIG = """\
search_space:
  stem_stride: 1
child_training:
  data: {name: synthetic, synthetic_samples: 48, num_classes: 3, input_size: 8}
  epochs: 1
  batch_size: 16
  lr: 0.05
  schedule: constant
  warmup_epochs: 0
  threads: 1
latency:
  predictor: flops
  target_ms: 0.5
"""
TINY = ["r1_k3_s11_e1_i8_o8", "r1_k3_s22_e3_i8_o16_se0.25"]


def test_scale_prints_and_writes_a_readable_export(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "b2.json"
    assert main(["scale", "efficientnet_b0", "--phi", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "input 224 -> 258" in text and "5,288,548 -> 9,109,994 parameters" in text
    record = json.loads(out.read_text())
    assert record["input_size"] == 258 and record["activation"] == "swish"
    assert count_params(build_model(resolve_arch(str(out)))) == 9_109_994


def test_scale_explicit_coefficients_and_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["scale", *TINY, "--phi", "2", "--alpha", "1.5", "--beta", "1", "--gamma", "1",
                 "--input-size", "32"]) == 0
    assert "r3_k3_s11_e1_i8_o8 r3_k3_s22_e3_i8_o16_se0.25" in capsys.readouterr().out
    assert main(["scale", "shufflenet_v2"]) == 2
    assert "outside the block grammar" in capsys.readouterr().err
    assert main(["scale", "mnasnet_a1", "--grid"]) == 2
    assert "--grid needs --config" in capsys.readouterr().err


def test_grid_search_scores_every_candidate_and_resumes(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "grid"
    args = ["scale", *TINY, "--grid", "--config", str(config), "--step", "0.2", "--out", str(out),
            "--rounds", "1", "--runs", "3", "--warmup", "1", "--quiet"]
    assert main(args) == 0
    result = json.loads((out / "grid.json").read_text())
    cands = result["candidates"]
    assert len(cands) >= 3 and result["base"]["input_size"] == 8
    for c in cands:
        assert abs(c["alpha"] * c["beta"] ** 2 * c["gamma"] ** 2 - 2) <= 0.1
        assert c["input_size"] == round(8 * c["gamma"]) and c["latency_ms"] > 0
    best = result["best"]
    assert best["reward"] == max(c["reward"] for c in cands if c["reward"] is not None)
    assert "best by reward" in capsys.readouterr().out
    lines = len((out / "grid.jsonl").read_text().splitlines())
    assert main(args) == 0  # a rerun trains nothing again
    assert len((out / "grid.jsonl").read_text().splitlines()) == lines == len(cands) + 1
