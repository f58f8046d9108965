"""Proxy training of sampled children: the ACC term of the MnasNet reward.

MnasNet trains every sampled child briefly (5 epochs on ImageNet-train) and validates it on images
held out from the training data. Almost all of a search's time is spent here, so the loop keeps
data as in-memory tensors, augments whole batches at once and never does per-sample Python work.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import Network, build_network, count_macs, count_params

from mnas.config.loader import check
from mnas.training.data import DataConfig, Dataset, load_dataset
from mnas.training.device import (autocast, check_device, check_precision, grad_scaler,
                                  on_device, resolve_device, rng_devices)
from mnas.training.optim import build_optimizer, lr_at

STATUSES = ("ok", "diverged", "failed", "timeout")


#: Largest seed torch's generators take (signed 64-bit, less the +1 of the evaluation stream).
MAX_SEED = 2 ** 63 - 2


@dataclass(frozen=True)
class TrainConfig:
    """How one child is trained. All fields are YAML-friendly plain types (the experiment config
    loader builds this from the `child_training` section generically).

    `epochs` (may be fractional) or `steps` (optimizer steps; overrides epochs when set).
    `optimizer`: "sgd" (momentum, optionally Nesterov) or "rmsprop" (the paper's: decay 0.9,
    momentum 0.9, eps 1e-3 TF-style, i.e. inside the square root). `schedule`: "cosine", "step"
    (x`step_gamma` every `step_epochs`, the paper's 0.97 per 2.4 epochs) or "constant", after a
    linear warm-up of `warmup_epochs`. `augment`: random crop with padding (+ flips where the data
    set allows them). `bn_recalibration`: before evaluating, recompute BatchNorm statistics
    over this many training batches (0 = off): with TF's BN momentum 0.99 the running averages
    lag far behind the weights after a few hundred steps, which makes a briefly trained child
    look like chance in eval mode. `threads`: torch threads for this process (0 = leave torch's
    setting).
    `channels_last`: memory format ("auto" picks by a measured rule). `time_limit_s`: stop and
    report status "timeout" when exceeded (None = no limit).
    `device`: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N" (a Ray actor
    trains on the GPU Ray assigned it instead). `precision`: "fp32", "bf16" or "fp16" (autocast
    for the forward pass; fp16 adds a gradient scaler).
    """

    data: DataConfig = field(default_factory=DataConfig)
    epochs: float = 2.0
    steps: int | None = None
    batch_size: int = 64
    optimizer: Literal["sgd", "rmsprop"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    nesterov: bool = True
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = 0.5
    step_epochs: float = 2.4
    step_gamma: float = 0.97
    label_smoothing: float = 0.1
    augment: bool = False
    eval_batch_size: int = 500
    bn_recalibration: int = 8
    seed: int = 0
    threads: int = 0
    channels_last: Literal["auto", "on", "off"] = "auto"
    time_limit_s: float | None = None
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        """Ranges only: types and choices are the config loader's (`mnas.config.loader`)."""
        check(self.epochs > 0, "epochs", "a number > 0", self.epochs)
        check(self.steps is None or self.steps >= 1, "steps", "an integer >= 1 or null",
              self.steps)
        for name in ("batch_size", "eval_batch_size"):
            check(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        check(self.bn_recalibration >= 0, "bn_recalibration", "an integer >= 0 (0 = off)",
              self.bn_recalibration)
        check(self.threads >= 0, "threads", "an integer >= 0 (0 = torch default)", self.threads)
        check(0 <= self.seed <= MAX_SEED, "seed", f"an integer in [0, {MAX_SEED}]", self.seed)
        check(self.lr > 0, "lr", "a number > 0", self.lr)
        for name in ("weight_decay", "warmup_epochs"):
            check(getattr(self, name) >= 0, name, "a number >= 0", getattr(self, name))
        for name in ("momentum", "label_smoothing"):
            check(0 <= getattr(self, name) < 1, name, "a number in [0, 1)", getattr(self, name))
        check(self.step_epochs > 0, "step_epochs", "a number > 0", self.step_epochs)
        check(0 < self.step_gamma <= 1, "step_gamma", "a number in (0, 1]", self.step_gamma)
        check(self.time_limit_s is None or self.time_limit_s > 0, "time_limit_s",
              "a number > 0 or null", self.time_limit_s)
        check_device(self.device)
        check_precision(self.precision)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChildResult:
    """What one proxy training produced. `status` is "ok", "diverged" (NaN/inf loss, stopped
    early), "failed" (an exception; `error` holds the message) or "timeout" (`time_limit_s` hit;
    accuracy is measured on what was trained so far). The caller decides the reward."""

    accuracy: float
    train_loss: float
    epochs: float
    images_per_s: float
    wall_time_s: float
    params: int
    macs: int
    status: str = "ok"
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"ChildResult.status: must be one of {', '.join(STATUSES)}, "
                             f"got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: a non-finite loss (diverged/failed children) becomes None."""
        d = asdict(self)
        for key in ("accuracy", "train_loss", "images_per_s", "wall_time_s", "epochs"):
            if not math.isfinite(d[key]):
                d[key] = None
        return d


@dataclass(frozen=True)
class Stretch:
    """How a stretch of training (`Trainer.train`) ended: `status` ok/diverged/timeout, mean loss
    of the last epoch's steps, images seen and seconds spent in the training loop."""

    status: str
    loss: float
    images: int
    seconds: float


def use_channels_last(config: TrainConfig, device: torch.device | None = None) -> bool:
    """The rule for "auto". CPU, measured (`bench/train_bench.py channels-last`): channels_last
    trained these depthwise-heavy networks 1.65-2.6x faster at every input size we measured
    (8, 16, 32 px; 1 thread), so on. CUDA, not measured here (no GPU): on with bf16/fp16, where
    cuDNN's tensor-core kernels want NHWC (PyTorch's guidance), off in fp32. No device: the CPU."""
    if config.channels_last != "auto":
        return config.channels_last == "on"
    if device is not None and device.type == "cuda":
        return config.precision != "fp32"
    return True


def augment_batch(x: torch.Tensor, pad: int, flip: bool,
                  generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding (zero = the mean after normalisation) and optional
    horizontal flip, for a whole batch at once with two gathers: no per-sample Python work."""
    b, c, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        oy, ox = oy.to(x.device), ox.to(x.device)  # drawn on the CPU: same numbers everywhere
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        rows, cols = rows.expand(b, c, h, w + 2 * pad), cols.expand(b, c, h, w)
        x = padded.gather(2, rows).gather(3, cols)
    if flip:
        mask = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


class Trainer:
    """Owns model, optimizer, schedule and data order for one training run. Shared by the proxy
    trainer (`train_child`) and full training (`mnas train`, which checkpoints `state_dict()`
    at epoch ends and resumes from it)."""

    def __init__(self, model: nn.Module, data: Dataset, config: TrainConfig,
                 device: torch.device | None = None) -> None:
        self.device = resolve_device(config.device) if device is None else device
        check_precision(config.precision, self.device)
        self.model, self.data, self.config = model.to(self.device), data, config
        self.train_x, self.train_y, self.val_x, self.val_y = on_device(
            data, (data.train_x, data.train_y, data.val_x, data.val_y), self.device)
        n = len(data.train_y)
        self.batch_size = min(config.batch_size, n)
        self.steps_per_epoch = max(n // self.batch_size, 1)  # drop the ragged last batch
        self.total_steps = config.steps or max(math.ceil(config.epochs * self.steps_per_epoch), 1)
        self.channels_last = use_channels_last(config, self.device)
        self.pad = max(1, data.input_size // 8) if config.augment else 0
        self.flip = config.augment and data.flip
        self.optimizer = build_optimizer(model, config)
        self.scaler = grad_scaler(self.device, config.precision)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self._perm = torch.empty(0, dtype=torch.long)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    @property
    def epochs_done(self) -> float:
        return self.step / self.steps_per_epoch

    def train_epochs(self) -> Iterator[Stretch]:
        """Train from where the trainer stands to `total_steps`, one stretch per epoch (the last
        may be partial), stopping after a diverged one: for callers that evaluate, log or
        report between epochs (`mnas train`, the Tune trainable)."""
        spe = self.steps_per_epoch
        while self.step < self.total_steps:
            stretch = self.train(min((self.step // spe + 1) * spe, self.total_steps))
            yield stretch
            if stretch.status == "diverged":
                return

    def _batches(self, until: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x_all, y_all, bs = self.train_x, self.train_y, self.batch_size
        while self.step < until:
            i = self.step % self.steps_per_epoch
            if i == 0 or len(self._perm) == 0:
                self._perm = torch.randperm(len(y_all), generator=self.generator)
            idx = self._perm[i * bs:(i + 1) * bs].to(x_all.device)
            x = self._to_device(x_all.index_select(0, idx))
            if self.pad or self.flip:
                x = augment_batch(x, self.pad, self.flip, self.generator)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self._to_device(y_all.index_select(0, idx))

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A batch of a data set that did not fit on the device goes there step by step."""
        return t if t.device == self.device else t.to(self.device, non_blocking=True)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (a supernet trainer averages it over sampled paths)."""
        return F.cross_entropy(self.model(x), y, label_smoothing=self.config.label_smoothing)

    def train(self, until: int, deadline: float | None = None) -> Stretch:
        """Train up to optimizer step `until`; stop early on a non-finite loss or the deadline
        (a `time.perf_counter()` value)."""
        model, opt, cfg = self.model, self.optimizer, self.config
        model.train()
        start, images = time.perf_counter(), 0
        recent: deque[float] = deque(maxlen=self.steps_per_epoch)
        for x, y in self._batches(until):
            lr = lr_at(self.step, cfg, self.steps_per_epoch, self.total_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            with autocast(self.device, cfg.precision):
                loss = self.loss(x, y)
            opt.zero_grad(set_to_none=True)
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            value = loss.item()
            if not math.isfinite(value):
                return Stretch("diverged", value, images, time.perf_counter() - start)
            if self.scaler:  # skips steps whose scaled gradients overflowed, adapts the scale
                self.scaler.step(opt)
                self.scaler.update()
            else:
                opt.step()
            self.step += 1
            images += len(y)
            recent.append(value)
            if deadline is not None and time.perf_counter() > deadline:
                return Stretch("timeout", _mean(recent), images, time.perf_counter() - start)
        return Stretch("ok", _mean(recent), images, time.perf_counter() - start)

    @torch.inference_mode()
    def evaluate(self, x_all: torch.Tensor | None = None,
                 y_all: torch.Tensor | None = None) -> float:
        """Top-1 accuracy (0..1) on the validation split (or the given tensors)."""
        x_all = self.val_x if x_all is None else x_all
        y_all = self.val_y if y_all is None else y_all
        if self.config.bn_recalibration:
            self.recalibrate_bn(self.config.bn_recalibration)
        self.model.eval()
        correct = 0
        for start in range(0, len(y_all), self.config.eval_batch_size):
            x = self._to_device(x_all[start:start + self.config.eval_batch_size])
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.config.precision):
                pred = self.model(x).argmax(1)
            correct += int((pred == self._to_device(y_all[start:start + len(x)])).sum())
        self.model.train()
        return correct / max(len(y_all), 1)

    @torch.no_grad()
    def recalibrate_bn(self, batches: int) -> None:
        """Reset BatchNorm running statistics and re-estimate them as exact averages over
        `batches` seeded-random training batches (no augmentation) with the final weights."""
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        order = torch.randperm(len(self.data.train_y),
                               generator=torch.Generator().manual_seed(self.config.seed + 1))
        self.model.train()
        # the dropout draws here must not shift training's random stream
        with torch.random.fork_rng(devices=rng_devices(self.device)), \
                autocast(self.device, self.config.precision):
            self._forward_batches(order, min(batches, self.steps_per_epoch))
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum

    def _forward_batches(self, order: torch.Tensor, batches: int) -> None:
        for i in range(batches):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size].to(self.train_x.device)
            x = self._to_device(self.train_x.index_select(0, idx))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.model(x)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit from an epoch boundary (tensors and plain
        values only, so `torch.load(..., weights_only=True)` reads it back)."""
        state = dict(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                     step=self.step, generator=self.generator.get_state(),
                     torch_rng=torch.get_rng_state())
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self._perm = torch.empty(0, dtype=torch.long)


def _mean(values: deque[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Set torch's intra-op threads for the duration (0 = leave as is), then restore: one worker
    process may run children with different settings, and tests share a process."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)


def train_child(arch: Network, config: TrainConfig, *,
                num_classes: int | None = None) -> ChildResult:
    """Train `arch` briefly on the proxy data and return its validation top-1.

    Bad configuration or data (missing file, wrong shapes) raise ValueError/FileNotFoundError:
    every child would fail the same way. Anything raised while building or training this child
    becomes status "failed" with the message; a NaN/inf loss stops it as "diverged" (accuracy 0);
    `time_limit_s` stops it as "timeout" (accuracy of what was trained). Seeded and deterministic
    for a given seed and thread count; the caller's global RNG state is left untouched.
    """
    start = time.perf_counter()
    device = resolve_device(config.device)  # a device that is not there stops the search
    check_precision(config.precision, device)
    data = load_dataset(config.data)
    classes = num_classes or data.num_classes
    if classes < data.num_classes:
        raise ValueError(f"num_classes={classes} but the data set has labels up to "
                         f"{data.num_classes - 1}")
    params = macs = 0
    deadline = start + config.time_limit_s if config.time_limit_s else None
    with torch_threads(config.threads), torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(config.seed)
        try:
            model = build_network(arch, num_classes=classes, in_channels=data.in_channels)
            params = count_params(model)
            macs = count_macs(model, data.input_size, data.in_channels)
            trainer = Trainer(model, data, config, device)
            outcome = trainer.train(trainer.total_steps, deadline)
            accuracy = trainer.evaluate() if outcome.status != "diverged" else 0.0
        except Exception as exc:  # noqa: BLE001 - reported to the caller, who decides the reward
            return ChildResult(0.0, float("nan"), 0.0, 0.0, time.perf_counter() - start,
                               params, macs, "failed", f"{type(exc).__name__}: {exc}")
    return ChildResult(accuracy=accuracy, train_loss=outcome.loss, epochs=trainer.epochs_done,
                       images_per_s=outcome.images / max(outcome.seconds, 1e-9),
                       wall_time_s=time.perf_counter() - start, params=params, macs=macs,
                       status=outcome.status)
