"""Proxy training of sampled children: the ACC term of the MnasNet reward.

MnasNet trains every sampled child briefly (5 epochs on ImageNet-train) and validates it on images
held out from the training data. Almost all of a search's time is spent here, so the loop keeps
data as in-memory tensors, augments whole batches at once and never does per-sample Python work.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .data import DataConfig

OPTIMIZERS = ("sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "constant")
CHANNELS_LAST = ("auto", "on", "off")
STATUSES = ("ok", "diverged", "failed", "timeout")


def _fail(name: str, expected: str, value: object) -> None:
    raise ValueError(f"child_training.{name}: {expected}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """How one child is trained. All fields are YAML-friendly plain types (the experiment config
    loader builds this from the `child_training` section generically).

    `epochs` (may be fractional) or `steps` (optimizer steps; overrides epochs when set).
    `optimizer`: "sgd" (momentum, optionally Nesterov) or "rmsprop" (the paper's: decay 0.9,
    momentum 0.9, eps 1e-3 TF-style, i.e. inside the square root). `schedule`: "cosine", "step"
    (x`step_gamma` every `step_epochs`, the paper's 0.97 per 2.4 epochs) or "constant", after a
    linear warm-up of `warmup_epochs`. `augment`: random crop with padding (+ flips where the data
    set allows them). `threads`: torch threads for this process (0 = leave torch's setting).
    `channels_last`: memory format ("auto" picks by a measured rule). `time_limit_s`: stop and
    report status "timeout" when exceeded (None = no limit).
    """

    data: DataConfig = field(default_factory=DataConfig)
    epochs: float = 5.0
    steps: int | None = None
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    nesterov: bool = True
    schedule: str = "cosine"
    warmup_epochs: float = 0.5
    step_epochs: float = 2.4
    step_gamma: float = 0.97
    label_smoothing: float = 0.1
    augment: bool = True
    eval_batch_size: int = 500
    seed: int = 0
    threads: int = 0
    channels_last: str = "auto"
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):  # tolerate a plain mapping from YAML
            object.__setattr__(self, "data", DataConfig(**self.data))
        if not isinstance(self.data, DataConfig):
            _fail("data", "must be a DataConfig (a mapping in YAML)", self.data)
        if not _is_num(self.epochs) or self.epochs <= 0:
            _fail("epochs", "must be a number > 0", self.epochs)
        for name in ("batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                _fail(name, "must be an integer >= 1", value)
        if self.steps is not None and (not _is_int(self.steps) or self.steps < 1):
            _fail("steps", "must be an integer >= 1 or null", self.steps)
        self._check_choices()
        self._check_numbers()

    def _check_choices(self) -> None:
        for name, options in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("channels_last", CHANNELS_LAST)):
            if getattr(self, name) not in options:
                _fail(name, f"must be one of {', '.join(options)}", getattr(self, name))
        for name in ("nesterov", "augment"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, "must be true or false", getattr(self, name))
        if not _is_int(self.seed):
            _fail("seed", "must be an integer", self.seed)
        if not _is_int(self.threads) or self.threads < 0:
            _fail("threads", "must be an integer >= 0 (0 = torch default)", self.threads)

    def _check_numbers(self) -> None:
        if not _is_num(self.lr) or self.lr <= 0:
            _fail("lr", "must be a number > 0", self.lr)
        for name in ("weight_decay", "warmup_epochs"):
            if not _is_num(getattr(self, name)) or getattr(self, name) < 0:
                _fail(name, "must be a number >= 0", getattr(self, name))
        if not _is_num(self.momentum) or not 0 <= self.momentum < 1:
            _fail("momentum", "must be a number in [0, 1)", self.momentum)
        if not _is_num(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            _fail("label_smoothing", "must be a number in [0, 1)", self.label_smoothing)
        if not _is_num(self.step_epochs) or self.step_epochs <= 0:
            _fail("step_epochs", "must be a number > 0", self.step_epochs)
        if not _is_num(self.step_gamma) or not 0 < self.step_gamma <= 1:
            _fail("step_gamma", "must be a number in (0, 1]", self.step_gamma)
        if self.time_limit_s is not None and (not _is_num(self.time_limit_s)
                                              or self.time_limit_s <= 0):
            _fail("time_limit_s", "must be a number > 0 or null", self.time_limit_s)

    def to_dict(self) -> dict:
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

    def to_dict(self) -> dict:
        return asdict(self)
