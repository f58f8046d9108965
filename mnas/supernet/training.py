"""Supernet training: single-path uniform sampling (optionally the sandwich rule) with the child
trainer's optimiser, schedule and augmentation, an atomic checkpoint every epoch, and resume.

The checkpoint holds tensors and one JSON string only (read back with `weights_only=True`): the
trainer state and `meta` (the space, kernel transform, classes, epochs done, per-epoch history),
so a checkpoint names the space it was trained for and is refused for any other.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mnas.fileio import atomic_torch_save
from mnas.supernet.config import SupernetConfig
from mnas.training.data import Dataset, load_dataset
from mnas.training.trainer import Trainer, TrainConfig, torch_threads
from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec
from search_spaces.supernet import SuperNet

#: Settings a resumed supernet run may change (a longer run).
RESUMABLE_CHANGES = ("epochs", "steps", "time_limit_s")
#: Steps per progress-bar update (a CIFAR-10 supernet epoch is several minutes on a laptop CPU).
PROGRESS_STEPS = 20


class SupernetTrainer(Trainer):
    """`Trainer` whose loss is averaged over the children sampled for the step."""

    def __init__(self, supernet: SuperNet, data: Dataset, config: TrainConfig, *,
                 sandwich: bool = False) -> None:
        super().__init__(supernet, data, config)
        self.supernet, self.sandwich = supernet, sandwich
        self.paths = torch.Generator().manual_seed(config.seed + 7919)
        space = supernet.space
        self._extremes = [space.decode(supernet.extreme_actions(True)),
                          space.decode(supernet.extreme_actions(False))] if sandwich else []

    def sample(self) -> ArchSpec:
        """A uniformly random child (seeded by the trainer, so a resumed run continues it)."""
        space = self.supernet.space
        actions = [int(torch.randint(d.size, (1,), generator=self.paths)) for d in space.decisions]
        return space.decode(actions)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        children = self._extremes + [self.sample()]
        smoothing = self.config.label_smoothing
        losses = [F.cross_entropy(self.supernet(x, arch), y, label_smoothing=smoothing)
                  for arch in children]
        return torch.stack(losses).mean()

    def state_dict(self) -> dict[str, Any]:
        return dict(super().state_dict(), paths=self.paths.get_state())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.paths.set_state(state["paths"])


def _meta(space: MnasNetSpace, sn: SupernetConfig, train: TrainConfig, data: Dataset,
          history: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(space=space.to_dict(), fingerprint=space.fingerprint,
                kernel_transform=sn.kernel_transform, sandwich=sn.sandwich,
                num_classes=data.num_classes, in_channels=data.in_channels,
                input_size=data.input_size, child_training=train.to_dict(), history=history)


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a supernet checkpoint; one-line errors for a missing or foreign file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no supernet checkpoint here (train one with "
                                "`mnas supernet train CONFIG`)")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
        meta = json.loads(state["meta"])
        _ = meta["space"], meta["fingerprint"]  # KeyError unless both are present
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one line
        raise ValueError(f"{path}: not a readable supernet checkpoint "
                         f"({type(exc).__name__})") from None
    return state, meta


def check_space(path: Path, meta: dict[str, Any], space: MnasNetSpace) -> None:
    if meta["fingerprint"] != space.fingerprint:
        raise ValueError(f"{path}: supernet checkpoint is for another search space (fingerprint "
                         f"{meta['fingerprint']}, the config's is {space.fingerprint})")


def check_data(path: Path, meta: dict[str, Any], data: Dataset) -> None:
    """Refuse data the supernet's classifier or stem cannot take (more classes, other channels)."""
    if data.num_classes > meta["num_classes"] or data.in_channels != meta["in_channels"]:
        raise ValueError(f"{path}: supernet was trained for {meta['num_classes']} classes and "
                         f"{meta['in_channels']} channels, the data has {data.num_classes} and "
                         f"{data.in_channels}")


def supernet_from_weights(meta: dict[str, Any], weights: dict[str, torch.Tensor]) -> SuperNet:
    """The supernet a checkpoint's `meta` describes, holding `weights` (its model state)."""
    space = MnasNetSpace.from_dict(meta["space"])
    net = SuperNet(space, meta["num_classes"], meta["in_channels"], meta["kernel_transform"])
    net.load_state_dict(weights)
    net.eval()
    return net


def load_supernet(path: Path, space: MnasNetSpace | None = None) -> tuple[SuperNet, dict[str, Any]]:
    """The trained supernet in a checkpoint (checked against `space` when given) and its meta."""
    state, meta = read_checkpoint(path)
    if space is not None:
        check_space(path, meta, space)
    return supernet_from_weights(meta, state["trainer"]["model"]), meta


def _resume(trainer: SupernetTrainer, path: Path, meta_now: dict[str, Any]) -> list[dict[str, Any]]:
    state, meta = read_checkpoint(path)
    check_space(path, meta, trainer.supernet.space)
    for key in ("kernel_transform", "sandwich", "num_classes", "in_channels", "input_size"):
        if meta[key] != meta_now[key]:
            raise ValueError(f"{path}: checkpoint has {key} {meta[key]!r}, this run "
                             f"{meta_now[key]!r} (use another checkpoint path)")
    old, new = meta["child_training"], meta_now["child_training"]
    changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and new[k] != old.get(k))
    if changed:
        raise ValueError(f"{path}: child_training.{changed[0]} differs from the checkpointed "
                         "supernet run (only the epochs may change when resuming)")
    trainer.load_state_dict(state["trainer"])
    return list(meta["history"])


def _epoch(trainer: SupernetTrainer, end: int, bar: Any) -> tuple[float, float]:
    """Train to step `end` (an epoch boundary) in stretches of `PROGRESS_STEPS`, so the progress
    bar and its ETA move within an epoch; the epoch's mean loss and training seconds."""
    weighted, seconds, start = 0.0, 0.0, trainer.step
    while trainer.step < end:
        before = trainer.step
        outcome = trainer.train(min(before + PROGRESS_STEPS, end))
        if outcome.status == "diverged":
            raise ValueError(f"supernet training diverged at step {trainer.step} (loss "
                             f"{outcome.loss}); lower supernet.lr")
        bar.update(trainer.step - before)
        weighted += outcome.loss * (trainer.step - before)
        seconds += outcome.seconds
        bar.set_postfix(epoch=f"{trainer.epochs_done:.2f}", loss=f"{outcome.loss:.3f}")
    return weighted / max(trainer.step - start, 1), seconds


def train_supernet(space: MnasNetSpace, train: TrainConfig, sn: SupernetConfig, out: Path, *,
                   progress: bool = True) -> dict[str, Any]:
    """Train (or continue training) the supernet into `out`; return the final meta."""
    from mnas.progress import progress_bar

    config = replace(train, epochs=float(sn.epochs), steps=None, lr=sn.lr or train.lr)
    data = load_dataset(config.data)
    with torch_threads(config.threads):
        torch.manual_seed(config.seed)
        net = SuperNet(space, data.num_classes, data.in_channels, sn.kernel_transform)
        trainer = SupernetTrainer(net, data, config, sandwich=sn.sandwich)
        meta = _meta(space, sn, config, data, [])
        history = _resume(trainer, out, meta) if out.exists() else []
        meta = _meta(space, sn, config, data, history)
        spe, total = trainer.steps_per_epoch, trainer.total_steps
        bar = progress_bar(total, initial=trainer.step, unit="step", desc="supernet",
                           enabled=progress)
        try:
            while trainer.step < total:
                loss, seconds = _epoch(trainer, min((trainer.step // spe + 1) * spe, total), bar)
                history.append(dict(epoch=round(trainer.epochs_done, 4), loss=loss,
                                    seconds=round(seconds, 2), time=time.time()))
                meta = _meta(space, sn, config, data, history)
                out.parent.mkdir(parents=True, exist_ok=True)
                atomic_torch_save(dict(trainer=trainer.state_dict(), meta=json.dumps(meta)), out)
        finally:
            bar.close()
    return meta
