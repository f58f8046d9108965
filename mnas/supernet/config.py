"""The `supernet` section of an experiment config (torch-free, so the CLI loads it cheaply)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mnas.config.loader import check


@dataclass(frozen=True)
class SupernetConfig:
    """How the one-shot supernet is trained and how a child is scored with its weights.

    Optimiser, schedule, batch size, augmentation and data come from `child_training`;
    `epochs` and `lr` (null = child_training.lr) override it for the supernet's own, longer run.
    `checkpoint`: the supernet file (null = `<output.dir>/supernet/<name>.pt`). `sandwich`: each
    step trains the largest, the smallest and one random child together (else one random child):
    on by default because single-path sampling over ops with weights of their own (conv, dconv
    beside MBConv) barely learns (quickstart space, digits, 3 epochs: training loss 2.34, chance
    level, against 1.67 with the sandwich rule).
    Scoring a child: BatchNorm statistics re-estimated over `recalibration_batches` training
    batches, then top-1 on `val_images` images of the validation split (a seeded random
    subset; null = all); `finetune_steps` > 0 first trains a copy of the child that many steps.
    """

    checkpoint: str | None = None
    epochs: float = 20.0
    lr: float | None = None
    kernel_transform: Literal["crop", "ofa"] = "crop"
    sandwich: bool = True
    recalibration_batches: int = 8
    val_images: int | None = 2000
    finetune_steps: int = 0

    def __post_init__(self) -> None:
        check(0 < self.epochs < float("inf"), "epochs", "a finite number > 0", self.epochs)
        check(self.lr is None or 0 < self.lr < float("inf"), "lr", "a finite number > 0 or null",
              self.lr)
        check(self.recalibration_batches >= 1, "recalibration_batches", "an integer >= 1",
              self.recalibration_batches)
        check(self.val_images is None or self.val_images >= 1, "val_images",
              "an integer >= 1 or null", self.val_images)
        check(self.finetune_steps >= 0, "finetune_steps", "an integer >= 0", self.finetune_steps)


def checkpoint_path(config: Any) -> Path:
    """Where an experiment's supernet lives: `supernet.checkpoint`, else
    `<output.dir>/supernet/<name>.pt`; `mnas supernet train` writes it, `evaluator: supernet`
    reads it."""
    if config.supernet.checkpoint:
        return Path(config.supernet.checkpoint)
    return Path(config.output.dir) / "supernet" / f"{config.name}.pt"
