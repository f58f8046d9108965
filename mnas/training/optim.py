"""Optimisers and learning-rate schedules for child and full training.

RMSProp follows TensorFlow's semantics as the MnasNet paper used them (decay 0.9, momentum 0.9,
epsilon 1e-3 *inside* the square root, mean-square slots initialised to one, learning rate applied
inside the momentum buffer); PyTorch's `torch.optim.RMSprop` differs on all three, and with
epsilon 1e-3 outside the root it trains noticeably differently.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable

import torch
from torch import nn

if TYPE_CHECKING:
    from mnas.training.trainer import TrainConfig

RMSPROP_DECAY = 0.9
RMSPROP_EPS = 1e-3


class RMSpropTF(torch.optim.Optimizer):
    """TF-style RMSProp: ms = d*ms + (1-d)*g^2; mom = m*mom + lr*g/sqrt(ms+eps); p -= mom.
    Weight decay is added to the gradient (an L2 term in the loss, as in the TF code)."""

    def __init__(self, params: Iterable[Any], lr: float, decay: float = RMSPROP_DECAY,
                 momentum: float = 0.9, eps: float = RMSPROP_EPS,
                 weight_decay: float = 0.0) -> None:
        if lr <= 0 or not 0 <= decay < 1 or not 0 <= momentum < 1 or eps <= 0:
            raise ValueError("RMSpropTF: need lr > 0, 0 <= decay < 1, 0 <= momentum < 1, eps > 0")
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            for p in params:
                if not self.state[p]:
                    self.state[p]["ms"] = torch.ones_like(p)
                    self.state[p]["mom"] = torch.zeros_like(p)
            ms = [self.state[p]["ms"] for p in params]
            mom = [self.state[p]["mom"] for p in params]
            torch._foreach_mul_(ms, group["decay"])
            torch._foreach_addcmul_(ms, grads, grads, value=1.0 - group["decay"])
            denom = torch._foreach_add(ms, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_mul_(mom, group["momentum"])
            torch._foreach_addcdiv_(mom, grads, denom, value=group["lr"])
            torch._foreach_sub_(params, mom)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only, not on BatchNorm parameters or biases (the
    official MnasNet code excludes batch-norm variables from its L2 loss)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay),
            dict(params=no_decay, weight_decay=0.0)]


def build_optimizer(model: nn.Module, config: "TrainConfig") -> torch.optim.Optimizer:
    groups = param_groups(model, config.weight_decay)
    if config.optimizer == "rmsprop":
        return RMSpropTF(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0, foreach=True)


def lr_at(step: int, config: "TrainConfig", steps_per_epoch: int, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up over `warmup_epochs`,
    then cosine decay to zero at `total_steps`, x`step_gamma` every `step_epochs`, or constant."""
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), max(total_steps - 1, 0))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "cosine":
        span = max(total_steps - warmup, 1)
        return 0.5 * config.lr * (1.0 + math.cos(math.pi * (step - warmup) / span))
    if config.schedule == "step":
        decays = math.floor(step / (steps_per_epoch * config.step_epochs) + 1e-9)
        return config.lr * config.step_gamma ** decays
    return config.lr
