"""child_training.device / precision on a CPU-only machine: resolution (torch.cuda mocked where a
GPU is pretended), the precision switch (bf16 autocast really computes in bf16), fp16's scaler,
and the Ray actor's device from the GPU ids Ray assigned it."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import math

import pytest
import torch

from mnas.cli import main
from mnas.training.data import DataConfig, load_dataset
from mnas.training.device import fits_on_device, on_device, ray_assigned_device, resolve_device
from mnas.training.trainer import Trainer, TrainConfig, train_child, use_channels_last
from search_spaces import build_model, decode_arch

TINY = decode_arch(["r1_k3_s11_e1_i8_o8", "r1_k3_s22_e3_i8_o16_se0.25"], stem_filters=8,
                   head_filters=32, stem_stride=1)
SYNTH = DataConfig(name="synthetic", synthetic_samples=128, num_classes=4, input_size=8)
BASE = TrainConfig(data=SYNTH, epochs=1, batch_size=32, lr=0.05, threads=1)


@pytest.fixture()
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend torch sees two CUDA devices (resolution only: nothing runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_device_resolution_without_cuda() -> None:
    assert not torch.cuda.is_available()  # this machine; the GPU cases below mock torch.cuda
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=r"child_training.device: .* CUDA is not available"):
            resolve_device(spec)


def test_device_resolution_with_mocked_cuda(two_gpus: None) -> None:
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2' requested but this machine has 2 CUDA"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("key,value", [("device", "gpu"), ("device", "cuda:x"), ("device", 0),
                                       ("precision", "fp8"), ("precision", "half")])
def test_bad_device_or_precision_names_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"child_training.{key}: must be one of"):
        replace(BASE, **{key: value})


def test_channels_last_rule_by_device() -> None:
    cuda = torch.device("cuda", 0)
    assert use_channels_last(BASE)  # CPU: measured faster at every size
    assert not use_channels_last(BASE, cuda)  # CUDA fp32: not measured, left off
    assert use_channels_last(replace(BASE, precision="bf16"), cuda)
    assert not use_channels_last(replace(BASE, channels_last="off", precision="bf16"), cuda)


def _conv_output_dtypes(config: TrainConfig) -> set[torch.dtype]:
    torch.manual_seed(0)
    trainer = Trainer(build_model(TINY, 4), load_dataset(SYNTH), config)
    seen: set[torch.dtype] = set()
    for m in trainer.model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    outcome = trainer.train(3)
    assert outcome.status == "ok" and math.isfinite(outcome.loss)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # fp32 masters
    return seen


def test_bf16_autocast_changes_the_compute_dtype_on_cpu() -> None:
    assert _conv_output_dtypes(BASE) == {torch.float32}
    assert _conv_output_dtypes(replace(BASE, precision="bf16")) == {torch.bfloat16}


def test_fp16_uses_a_grad_scaler_and_checkpoints_it() -> None:
    torch.manual_seed(0)
    config = replace(BASE, precision="fp16")
    trainer = Trainer(build_model(TINY, 4), load_dataset(SYNTH), config)
    assert trainer.scaler is not None
    assert Trainer(build_model(TINY, 4), load_dataset(SYNTH), BASE).scaler is None
    assert trainer.train(2).status == "ok"
    state = trainer.state_dict()
    assert state["scaler"]["scale"] > 0
    trainer.load_state_dict(state)


def test_train_child_in_bf16_learns() -> None:
    result = train_child(TINY, replace(BASE, precision="bf16", epochs=3))
    assert result.status == "ok" and result.accuracy > 0.25  # above chance (4 classes)


def test_train_child_stops_on_missing_cuda() -> None:
    with pytest.raises(ValueError, match="child_training.device"):
        train_child(TINY, replace(BASE, device="cuda"))


def test_mnas_train_asking_for_cuda_without_one_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text("child_training:\n  device: cuda\n"
                      "  data: {name: synthetic, synthetic_samples: 64, input_size: 8}\n")
    out = tmp_path / "run"
    assert main(["train", "mnasnet_a1", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "child_training.device" in err and "CUDA" in err
    assert not out.exists()


@pytest.mark.parametrize("ids,visible,expected", [
    ([], "0,1", "cpu"), (["1"], "1", "cuda:0"), (["3"], "1,3", "cuda:1"), ([2], None, "cuda:0"),
    (["0", "1"], "0,1", "cuda:0")])
def test_ray_assigned_device(ids: list, visible: str | None, expected: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert ray_assigned_device(ids, visible) == expected


def test_data_goes_to_the_device_once_per_data_set() -> None:
    """`on_device` with torch's "meta" device standing in for a GPU: copied once, reused by the
    next child, replaced when another data set comes."""
    meta, tensors, owner = torch.device("meta"), (torch.ones(3), torch.zeros(2)), object()
    first = on_device(owner, tensors, meta)
    assert all(t.device == meta for t in first)
    assert on_device(owner, tensors, meta) is first
    assert on_device(object(), tensors, meta) is not first
    assert on_device(owner, tensors, torch.device("cpu")) is tensors


def test_data_stays_on_the_host_when_it_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    cuda = torch.device("cuda", 0)
    assert fits_on_device(500, cuda) and not fits_on_device(501, cuda)  # half the free memory
    assert fits_on_device(10 ** 12, torch.device("cpu"))


@pytest.mark.parametrize("extra", [[], ["--local"]])
def test_mnas_search_asking_for_cuda_without_one_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str]) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text("child_training:\n  device: cuda:0\n  data: {name: synthetic}\n"
                      "ray: {gpus_per_child: 1}\n")
    run = tmp_path / "run"
    assert main(["search", str(config), "--run-dir", str(run), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "child_training.device: 'cuda:0' requested" in err[0]
    assert not run.exists()  # refused before the run directory (or Ray) was touched
