"""mnas.training.trainer / mnas.training.optim: proxy training, statuses, determinism, optimisers,
schedules."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from mnas.config.loader import load_section
from mnas.training.data import DataConfig
from mnas.training.optim import RMSpropTF, lr_at
from mnas.training.trainer import ChildResult, TrainConfig, Trainer, augment_batch, train_child
from search_spaces import decode_arch

TINY = decode_arch(["r1_k3_s11_e1_i8_o8", "r1_k3_s22_e3_i8_o16_se0.25"], stem_filters=8,
                   head_filters=32, stem_stride=1)
SYNTH = DataConfig(name="synthetic", synthetic_samples=200, num_classes=4, input_size=8)


def quick(**changes: object) -> TrainConfig:
    base = TrainConfig(data=SYNTH, epochs=3, batch_size=32, lr=0.1, threads=1)
    return replace(base, **changes)


@pytest.mark.parametrize("kwargs, field", [
    (dict(batch_size=0), "batch_size"), (dict(optimizer="adam"), "optimizer"),
    (dict(epochs=0), "epochs"), (dict(steps=0), "steps"), (dict(lr=-1.0), "lr"),
    (dict(schedule="linear"), "schedule"), (dict(channels_last="yes"), "channels_last"),
    (dict(augment=1), "augment"), (dict(time_limit_s=0), "time_limit_s"),
    (dict(label_smoothing=1.0), "label_smoothing"), (dict(threads=-1), "threads"),
])
def test_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    """Through the config loader, which checks types and choices; `__post_init__` keeps the
    ranges."""
    with pytest.raises(ValueError, match=rf"^child_training\.{field}: "):
        load_section(TrainConfig, kwargs, "child_training")


def test_nested_mapping_becomes_dataconfig() -> None:
    loaded = load_section(TrainConfig, {"data": {"name": "synthetic"}}, "child_training")
    assert loaded.data == DataConfig(name="synthetic")


def test_learns_better_than_chance_and_reports_everything() -> None:
    r = train_child(TINY, quick(epochs=6))
    assert r.status == "ok" and r.error is None
    assert r.accuracy > 0.5  # 4 classes: chance is 0.25
    assert r.epochs == pytest.approx(6.0) and r.params > 0 and r.macs > 0
    assert r.images_per_s > 0 and r.wall_time_s > 0 and math.isfinite(r.train_loss)
    assert set(r.to_dict()) >= {"accuracy", "status", "error", "params", "macs"}


def test_deterministic_for_seed_and_threads() -> None:
    a, b = train_child(TINY, quick()), train_child(TINY, quick())
    assert (a.accuracy, a.train_loss) == (b.accuracy, b.train_loss)
    c = train_child(TINY, quick(seed=1))
    assert c.train_loss != a.train_loss


def test_leaves_callers_rng_and_threads_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    train_child(TINY, quick(steps=2, threads=1))
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


def test_steps_override_epochs() -> None:
    r = train_child(TINY, quick(steps=3, epochs=100))
    assert r.epochs == pytest.approx(3 / (160 // 32))


def test_divergence_stops_early() -> None:
    r = train_child(TINY, quick(lr=1e30, momentum=0.0, bn_recalibration=0, warmup_epochs=0))
    assert r.status == "diverged" and r.accuracy == 0.0 and r.epochs < 3
    assert r.to_dict()["train_loss"] is None


def test_exception_becomes_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    import mnas.training.trainer as training

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(training.Trainer, "train", boom)
    r = train_child(TINY, quick())
    assert r.status == "failed" and r.error == "RuntimeError: out of memory (simulated)"
    assert r.accuracy == 0.0 and r.params > 0


def test_time_limit_gives_timeout() -> None:
    r = train_child(TINY, quick(epochs=1000, time_limit_s=0.5))
    assert r.status == "timeout" and r.epochs < 1000 and 0 <= r.accuracy <= 1


def test_num_classes_smaller_than_labels_is_an_error() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        train_child(TINY, quick(), num_classes=2)


@pytest.mark.parametrize("changes", [
    dict(optimizer="rmsprop", lr=0.01), dict(schedule="step"), dict(schedule="constant"),
    dict(augment=True, data=replace(SYNTH, flip=True)), dict(channels_last="off"),
])
def test_variants_train(changes: dict) -> None:
    r = train_child(TINY, quick(**changes))
    assert r.status == "ok" and r.accuracy > 0.3


def test_digits_default_budget_learns() -> None:
    r = train_child(TINY, TrainConfig(epochs=2, threads=1))
    assert r.status == "ok" and r.accuracy > 0.3  # 10 classes


def test_augment_batch_shapes_and_content() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    out = augment_batch(x, pad=1, flip=False, generator=g)
    assert out.shape == x.shape
    for i in range(2):  # every crop is a shifted window of the zero-padded image
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1))
        windows = [padded[:, r:r + 4, c:c + 4] for r in range(3) for c in range(3)]
        assert any(torch.equal(out[i], w) for w in windows)
    flipped = augment_batch(x.repeat(64, 1, 1, 1), pad=0, flip=True, generator=g)
    n_flipped = sum(torch.equal(f, x[0].flip(2)) for f in flipped[::2])
    assert 5 < n_flipped < 59


def test_lr_schedules() -> None:
    cfg = TrainConfig(lr=1.0, warmup_epochs=1, epochs=10)
    assert lr_at(0, cfg, 10, 100) == pytest.approx(0.1)
    assert lr_at(9, cfg, 10, 100) == pytest.approx(1.0)
    assert lr_at(10, cfg, 10, 100) == pytest.approx(1.0)
    assert lr_at(55, cfg, 10, 100) == pytest.approx(0.5)
    assert lr_at(99, cfg, 10, 100) < 0.01
    step = replace(cfg, schedule="step", warmup_epochs=0)
    assert lr_at(23, step, 10, 100) == 1.0 and lr_at(24, step, 10, 100) == pytest.approx(0.97)


def test_rmsprop_tf_matches_formula() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = RMSpropTF([p], lr=0.1, momentum=0.9)
    g = torch.tensor([0.5, 1.0])
    ms, mom, value = torch.ones(2), torch.zeros(2), p.detach().clone()
    for _ in range(3):
        p.grad = g.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * g * g
        mom = 0.9 * mom + 0.1 * g / torch.sqrt(ms + 1e-3)
        value = value - mom
    assert torch.allclose(p.detach(), value)


def test_trainer_resume_matches_uninterrupted() -> None:
    from mnas.training.data import load_dataset
    from search_spaces import build_model
    cfg, data = quick(epochs=4, augment=True), load_dataset(SYNTH)

    def fresh() -> Trainer:
        torch.manual_seed(0)
        return Trainer(build_model(TINY, 4), data, cfg)

    full = fresh()
    full.train(full.total_steps)
    half = fresh()
    half.train(2 * half.steps_per_epoch)
    state = half.state_dict()
    resumed = fresh()
    resumed.load_state_dict(state)
    resumed.train(resumed.total_steps)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_child_result_validates_status() -> None:
    with pytest.raises(ValueError, match="status"):
        ChildResult(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, status="weird")


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
def test_weight_decay_shrinks_conv_and_fc_weights_only(optimizer: str) -> None:
    """With a zero loss gradient a step moves only decayed parameters, towards zero; BatchNorm
    parameters and biases are left alone (the official code keeps them out of its L2 loss)."""
    from mnas.training.optim import build_optimizer
    from search_spaces import build_model

    torch.manual_seed(0)
    model = build_model(TINY, 4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, quick(optimizer=optimizer, weight_decay=0.1, momentum=0.0))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {n for n, p in model.named_parameters() if p.ndim > 1}
    for n in moved:
        p = dict(model.named_parameters())[n]
        assert p.detach().abs().sum() < before[n].abs().sum()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    still = {n: p.detach().clone() for n, p in model.named_parameters()}
    build_optimizer(model, quick(optimizer=optimizer, weight_decay=0.0, momentum=0.0)).step()
    assert all(torch.equal(p, still[n]) for n, p in model.named_parameters())


def test_label_smoothing_reaches_the_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configured smoothing is what the training loss uses, and it changes the loss."""
    import torch.nn.functional as F

    import mnas.training.trainer as training

    seen: list[float] = []
    original = F.cross_entropy

    def spy(logits: torch.Tensor, target: torch.Tensor, **kwargs: float) -> torch.Tensor:
        seen.append(kwargs["label_smoothing"])
        return original(logits, target, **kwargs)

    monkeypatch.setattr(training.F, "cross_entropy", spy)
    losses = {}
    for smoothing in (0.0, 0.3):
        result = train_child(TINY, quick(steps=2, label_smoothing=smoothing), num_classes=4)
        assert result.status == "ok"
        losses[smoothing] = result.train_loss
    assert seen == [0.0, 0.0, 0.3, 0.3]
    assert losses[0.0] != pytest.approx(losses[0.3], rel=1e-3)
