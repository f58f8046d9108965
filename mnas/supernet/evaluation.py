"""Scoring children with inherited supernet weights.

A child runs inside the supernet (no copy); BatchNorm statistics are re-estimated for it over a
few training batches (the shared running averages belong to no child in particular), then its
top-1 is measured on the validation split. With `finetune_steps` a copy of the child is extracted
and trained that many steps first, so the supernet's weights are never changed by scoring.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from mnas.supernet.config import SupernetConfig
from mnas.supernet.training import check_data, load_supernet
from mnas.training.data import Dataset, load_dataset
from mnas.training.trainer import ChildResult, Trainer, TrainConfig, torch_threads

from search_spaces.space import MnasNetSpace
from search_spaces.specs import ArchSpec
from search_spaces.supernet import ChildView, SuperNet


class SupernetScorer:
    """Scores child after child with one loaded supernet and one data set."""

    def __init__(self, supernet: SuperNet, data: Dataset, train: TrainConfig,
                 sn: SupernetConfig) -> None:
        if sn.val_images is not None and sn.val_images < len(data.val_y):
            # a seeded random subset, not the first N: the split is sorted by class, so its
            # first images are one or a few classes only
            keep = torch.randperm(len(data.val_y), generator=torch.Generator().manual_seed(0))
            keep = keep[:sn.val_images].sort().values
            data = replace(data, val_x=data.val_x[keep], val_y=data.val_y[keep])
        self.supernet, self.data, self.sn = supernet, data, sn
        self.train_config = replace(train, bn_recalibration=sn.recalibration_batches)
        self._view: ChildView | None = None
        self._trainer: Trainer | None = None

    def _view_trainer(self, arch: ArchSpec) -> Trainer:
        if self._trainer is None:
            self._view = self.supernet.view(arch)
            self._trainer = Trainer(self._view, self.data, self.train_config)
        else:
            assert self._view is not None
            self._view.arch = self.supernet.check(arch)
        return self._trainer

    def warmup(self) -> None:
        """Build what the first child would otherwise pay for (the trainer over the supernet,
        whose optimiser imports torch._dynamo: seconds), on the largest child."""
        space = self.supernet.space
        self._view_trainer(space.decode(self.supernet.extreme_actions(True)))

    def accuracy(self, arch: ArchSpec) -> float:
        """Top-1 (0..1) of `arch` with inherited weights on the (first `val_images`) validation
        images, after BN recalibration (and optional fine-tuning of a copy)."""
        with torch_threads(self.train_config.threads), torch.random.fork_rng(devices=[]):
            if self.sn.finetune_steps:
                model = self.supernet.extract(arch)
                trainer = Trainer(model, self.data,
                                  replace(self.train_config, steps=self.sn.finetune_steps,
                                          warmup_epochs=0.0))
                trainer.train(trainer.total_steps)
                return float(trainer.evaluate())
            return float(self._view_trainer(arch).evaluate())

    def score(self, arch: ArchSpec) -> ChildResult:
        """The child's result in the form the search records for trained children."""
        start = time.perf_counter()
        try:
            acc = self.accuracy(arch)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, who decides the reward
            return ChildResult(0.0, float("nan"), 0.0, 0.0, time.perf_counter() - start, 0, 0,
                               "failed", f"{type(exc).__name__}: {exc}")
        params = self.supernet.active_params(arch)
        return ChildResult(accuracy=acc, train_loss=float("nan"), epochs=0.0, images_per_s=0.0,
                           wall_time_s=time.perf_counter() - start, params=params, macs=0)


def build_scorer(net: SuperNet, meta: dict[str, Any], source: Path, train: TrainConfig,
                 sn: SupernetConfig) -> SupernetScorer:
    """A scorer over `net` (a checkpoint's supernet, `meta` its description) with the configured
    data, refused when the supernet cannot take it (`source` names the file)."""
    data = load_dataset(train.data)
    check_data(source, meta, data)
    return SupernetScorer(net, data, train, sn)


def load_scorer(path: Path, space: MnasNetSpace, train: TrainConfig,
                sn: SupernetConfig) -> SupernetScorer:
    """A scorer for the supernet at `path` (refused when trained for another space)."""
    net, meta = load_supernet(path, space)
    return build_scorer(net, meta, path, train, sn)
