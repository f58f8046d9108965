"""Supernet training (checkpoint, resume, refusal of foreign checkpoints) and child scoring."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mnas.supernet.config import SupernetConfig
from mnas.supernet.evaluation import SupernetScorer, load_scorer
from mnas.supernet.training import load_supernet, train_supernet
from mnas.training.data import DataConfig, load_dataset
from mnas.training.trainer import TrainConfig, Trainer
from search_spaces.space import MnasNetSpace

SPACE_DATA = dict(
    input_size=8, num_classes=10, stem_filters=8, stem_stride=1, head_filters=16, dropout=0.0,
    width_divisor=4,
    base=[dict(kernel=3, stride=1, expansion=1, filters=8, layers=1),
          dict(kernel=3, stride=2, expansion=6, filters=12, layers=1)])
SPACE = MnasNetSpace.from_dict(SPACE_DATA)
TRAIN = TrainConfig(data=DataConfig(name="digits", input_size=8, max_train=256, max_val=128),
                    batch_size=32, lr=0.05, threads=1, warmup_epochs=0.0)
SN = SupernetConfig(epochs=1, val_images=64, recalibration_batches=2, sandwich=False)


def test_training_checkpoints_each_epoch_and_resumes_bit_for_bit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mnas.supernet.training as training

    straight = tmp_path / "straight.pt"
    train_supernet(SPACE, TRAIN, replace(SN, epochs=2), straight, progress=False)
    real_save = training.atomic_torch_save

    def save_then_interrupt(obj: object, path: Path) -> None:
        real_save(obj, path)
        raise KeyboardInterrupt

    split = tmp_path / "split.pt"
    monkeypatch.setattr(training, "atomic_torch_save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(SPACE, TRAIN, replace(SN, epochs=2), split, progress=False)
    monkeypatch.setattr(training, "atomic_torch_save", real_save)
    assert len(json.loads(torch.load(split, weights_only=True)["meta"])["history"]) == 1
    second = train_supernet(SPACE, TRAIN, replace(SN, epochs=2), split, progress=False)
    assert [h["epoch"] for h in second["history"]] == [1.0, 2.0]
    a = torch.load(straight, weights_only=True)["trainer"]["model"]
    b = torch.load(split, weights_only=True)["trainer"]["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sandwich_rule_trains_largest_smallest_and_random(tmp_path: Path) -> None:
    meta = train_supernet(SPACE, TRAIN, replace(SN, sandwich=True), tmp_path / "s.pt",
                          progress=False)
    assert meta["sandwich"] is True and np.isfinite(meta["history"][0]["loss"])


def test_checkpoint_for_another_space_or_missing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sn.pt"
    train_supernet(SPACE, TRAIN, SN, path, progress=False)
    other = MnasNetSpace.from_dict(dict(SPACE_DATA, head_filters=24))
    with pytest.raises(ValueError, match="another search space"):
        load_supernet(path, other)
    with pytest.raises(ValueError, match="another search space"):
        train_supernet(other, TRAIN, SN, path, progress=False)
    with pytest.raises(FileNotFoundError, match="no supernet checkpoint"):
        load_supernet(tmp_path / "missing.pt", SPACE)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable supernet checkpoint"):
        load_supernet(tmp_path / "junk.pt", SPACE)


def test_scorer_recalibrates_and_leaves_the_supernet_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "sn.pt"
    train_supernet(SPACE, TRAIN, SN, path, progress=False)
    scorer = load_scorer(path, SPACE, TRAIN, SN)
    before = {k: v.clone() for k, v in scorer.supernet.state_dict().items()
              if "running" not in k and "num_batches" not in k}
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng) for _ in range(4)]
    results = [scorer.score(a) for a in archs]
    assert all(r.status == "ok" and 0.0 <= r.accuracy <= 1.0 for r in results)
    # Scoring inside the supernet = scoring the extracted stand-alone child, recalibrated alike.
    data = scorer.data
    extracted = Trainer(scorer.supernet.extract(archs[1]), data, scorer.train_config)
    assert extracted.evaluate() == pytest.approx(results[1].accuracy, abs=1.0 / len(data.val_y))
    again = scorer.score(archs[0])
    assert again.accuracy == results[0].accuracy  # recalibration is per child, deterministic
    after = scorer.supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    tuned = SupernetScorer(scorer.supernet, load_dataset(TRAIN.data), TRAIN,
                           replace(SN, finetune_steps=3)).score(archs[0])
    assert tuned.status == "ok"
    assert all(torch.equal(before[k], scorer.supernet.state_dict()[k]) for k in before)


def _config(tmp_path: Path) -> Path:
    import yaml

    config = dict(name="sn", search_space=SPACE_DATA,
                  child_training=dict(data=dict(name="digits", input_size=8, max_train=256,
                                                max_val=64),
                                      batch_size=32, lr=0.05, threads=1, warmup_epochs=0.0),
                  supernet=dict(epochs=40, val_images=64, sandwich=False),
                  output=dict(dir=str(tmp_path / "runs")))
    path = tmp_path / "sn.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_trains_and_refuses_bad_input(tmp_path: Path) -> None:
    config = _config(tmp_path)
    cmd = [sys.executable, "-m", "mnas.cli", "supernet", "train", str(config), "--quiet"]
    ok = subprocess.run(cmd + ["--set", "supernet.epochs=1"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "runs" / "supernet" / "sn.pt").is_file()
    bad = subprocess.run(cmd + ["--set", "supernet.kernel_transform=bilinear"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "kernel_transform" in bad.stderr
    other = subprocess.run(cmd + ["--set", "search_space.head_filters=24"], capture_output=True,
                           text=True)
    assert other.returncode == 2 and "another search space" in other.stderr
    assert "Traceback" not in other.stderr


@pytest.mark.slow
def test_training_resumes_after_sigkill(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ckpt = tmp_path / "runs" / "supernet" / "sn.pt"
    cmd = [sys.executable, "-m", "mnas.cli", "supernet", "train", str(config), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        deadline = time.time() + 300
        while not ckpt.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert ckpt.exists(), "no checkpoint written"
        time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    done = json.loads(torch.load(ckpt, weights_only=True)["meta"])["history"]
    assert 1 <= len(done) < 40
    res = subprocess.run(cmd + ["--set", f"supernet.epochs={len(done) + 2}"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    history = json.loads(torch.load(ckpt, weights_only=True)["meta"])["history"]
    assert [h["epoch"] for h in history] == [float(i) for i in range(1, len(done) + 3)]


def test_val_images_are_a_seeded_sample_of_every_class(tmp_path: Path) -> None:
    """A validation split sorted by class (CIFAR-10's is): its first images are one class."""
    path = tmp_path / "sn.pt"
    train_supernet(SPACE, TRAIN, SN, path, progress=False)
    data = load_dataset(TRAIN.data)
    order = torch.argsort(data.val_y, stable=True)
    data = replace(data, val_x=data.val_x[order], val_y=data.val_y[order])
    net, _ = load_supernet(path, SPACE)
    picked = SupernetScorer(net, data, TRAIN, replace(SN, val_images=20)).data.val_y
    assert len(picked) == 20 and len(set(picked.tolist())) >= 6
    again = SupernetScorer(net, data, TRAIN, replace(SN, val_images=20)).data.val_y
    assert torch.equal(again, picked)
