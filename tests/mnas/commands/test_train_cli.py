"""`mnas train`: result.json, ONNX export, checkpoints, resume and errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mnas.cli import main

TINY = ["r1_k3_s11_e1_i8_o8", "r1_k3_s22_e3_i8_o16_se0.25"]

CONFIG = """\
search_space:
  stem_stride: 1
child_training:
  data: {name: synthetic, synthetic_samples: 120, num_classes: 3, input_size: 8}
  epochs: 1
  batch_size: 16
  lr: 0.05
  schedule: constant
  warmup_epochs: 0
  augment: true
  threads: 1
"""


@pytest.fixture()
def config(tmp_path: Path) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    return str(path)


def _train(config: str, out: Path, *extra: str) -> int:
    return main(["train", *TINY, "--config", config, "--out", str(out), "--quiet", *extra])


def _weights(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=True)["trainer"]["model"]


def test_train_writes_result_onnx_checkpoint_tb(config: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert _train(config, out, "--epochs", "2") == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok" and 0 <= result["accuracy"] <= 1
    assert result["epochs"] == 2 and result["params"] > 0 and result["macs"] > 0
    assert result["stem_stride"] == 1 and result["blocks"] == TINY
    assert [h["epoch"] for h in result["history"]] == [1.0, 2.0]
    assert (out / "model.onnx").stat().st_size > 1000
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert "val accuracy" in capsys.readouterr().out
    import onnx
    onnx.checker.check_model(str(out / "model.onnx"))
    import numpy as np
    import onnxruntime as ort
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    assert inp.name == "input" and inp.shape[0] == "batch"  # deployable: any batch size
    x = np.zeros([4] + list(inp.shape[1:]), dtype=np.float32)
    assert session.run(None, {"input": x})[0].shape[0] == 4


def test_resume_equals_uninterrupted(config: str, tmp_path: Path) -> None:
    assert _train(config, tmp_path / "straight", "--epochs", "2") == 0
    assert _train(config, tmp_path / "split", "--epochs", "1") == 0
    elsewhere = tmp_path / "elsewhere.yaml"  # resumed on another device (auto -> cpu): allowed
    elsewhere.write_text(CONFIG + "  device: cpu\n")
    assert _train(str(elsewhere), tmp_path / "split", "--epochs", "2", "--resume") == 0
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra = json.loads((tmp_path / "straight" / "result.json").read_text())
    rb = json.loads((tmp_path / "split" / "result.json").read_text())
    assert ra["accuracy"] == rb["accuracy"] and len(rb["history"]) == 2


def test_existing_checkpoint_needs_resume(config: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert _train(config, out) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert _train(config, out) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before  # nothing lost


def test_resume_rejects_other_arch_or_config(config: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert _train(config, out) == 0
    assert main(["train", "r1_k3_s11_e1_i8_o8", "--config", config, "--out", str(out),
                 "--resume", "--quiet"]) == 2
    assert "different architecture" in capsys.readouterr().err
    Path(config).write_text(CONFIG.replace("lr: 0.05", "lr: 0.1"))
    assert _train(config, out, "--resume") == 2
    assert "child_training.lr" in capsys.readouterr().err


def test_bad_inputs_exit_2(tmp_path: Path, config: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "mnasnet_a1", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err
    assert _train(config, tmp_path / "x", "--epochs", "0") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("child_training:\n  batch_size: 0\n")
    assert main(["train", "mnasnet_a1", "--config", str(bad)]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_reference_name_and_export_json_inputs(config: str, tmp_path: Path) -> None:
    """The two other ways to name an architecture: a reference name, an `mnas export` JSON."""
    out = tmp_path / "a1"
    assert main(["train", "mnasnet_a1", "--config", config, "--out", str(out), "--quiet",
                 "--epochs", "0.15"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["params"] > 2_000_000 and result["stem_stride"] == 1
    assert (out / "model.onnx").exists()
    export = tmp_path / "best.json"
    export.write_text(json.dumps([{"blocks": TINY, "format": "tf", "stem_filters": 8,
                                   "stem_stride": 1, "head_filters": 32, "dropout": 0.0,
                                   "reward": 0.5, "accuracy": 0.5, "latency_ms": 1.0}]))
    out = tmp_path / "exported"
    assert main(["train", str(export), "--config", config, "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["blocks"] == TINY and result["head_filters"] == 32


@pytest.mark.parametrize("arch, fragment", [
    (["r1_k3_s11_e1_i8_o8_bogus"], "token 'bogus'"),
    (["r1_k3_s2_e1_i8_o8"], "token 's2'"),
    (["r1_k3_s11_e1_i8_o8", "r1_k3_s22_e3_i16_o16"], "block 2 takes 16 input filters"),
    (["mnasnet_a9"], "'mnasnet_a9' is neither a reference name"),
    (["mnasnet_a1@wide"], "width after '@' must be a number"),
    (["nope.json"], "nope.json"),
])
def test_malformed_architecture_is_one_line_exit_2(config: str, tmp_path: Path, arch: list[str],
                                                   fragment: str,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["train", *arch, "--config", config, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnas train: error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err
    assert not out.exists()


def test_missing_data_path_names_config_and_key(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("child_training:\n  data: {name: npz, path: /nope/d.npz}\n")
    out = tmp_path / "run"
    assert main(["train", *TINY, "--config", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: child_training.data.path: /nope/d.npz does not exist" in err
    assert err.count("\n") == 1 and not out.exists()


def test_train_a_family_outside_the_grammar(config: str, tmp_path: Path) -> None:
    out = tmp_path / "shuffle"
    assert main(["train", "shufflenet_v2@0.5", "--config", config, "--out", str(out),
                 "--quiet"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok" and result["blocks"] == ["shufflenet_v2@0.5"]
    assert result["stem_stride"] == 1 and (out / "model.onnx").exists()
    assert main(["train", "shufflenet_v2@0.5", "--config", config, "--out", str(out),
                 "--quiet", "--resume", "--epochs", "2"]) == 0
