"""The NASNet/MnasNet RNN controller, trained with REINFORCE or PPO.

A one-layer LSTM walks the decisions in order; at each step the previous decision's choice is
embedded as the input and a softmax over the current decision's choices is emitted. All
decisions share one embedding table and one output layer, sliced per decision by offsets (the
same as separate per-decision tables, but a whole batch of sequences is scored in one call).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Mapping, Sequence, TypeVar, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mnas.config.loader import check

from .base import Controller, Sample, check_count, check_seed, controller_options

if TYPE_CHECKING:
    from search_spaces.interface import HasDecisions

ALGORITHMS = ("reinforce", "ppo")
#: Larger controllers do not fit in memory (hidden_size 1e8 is 8e16 weights).
MAX_HIDDEN_SIZE = 4096


@dataclass(frozen=True)
class RNNOptions:
    """The RNN controller's options (`controller:` keys in YAML); see `RNNController` for why
    these defaults. The one place their ranges are stated."""

    algorithm: Literal["reinforce", "ppo"] = "reinforce"
    hidden_size: int = 100
    lr: float = 0.003
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.95
    temperature: float = 1.0
    tanh_constant: float | None = None
    ppo_epochs: int = 4
    ppo_clip: float = 0.2
    advantage: Literal["baseline", "risk_seeking"] = "baseline"
    top_fraction: float = 0.1
    rank_window: int = 64

    def __post_init__(self) -> None:
        for key in ("hidden_size", "ppo_epochs", "rank_window"):
            check(getattr(self, key) > 0, key, "an integer > 0", getattr(self, key))
        check(self.hidden_size <= MAX_HIDDEN_SIZE, "hidden_size",
              f"an integer <= {MAX_HIDDEN_SIZE} (the LSTM has 8 x hidden_size^2 weights)",
              self.hidden_size)
        for key in ("lr", "temperature", "ppo_clip"):
            check(getattr(self, key) > 0, key, "a number > 0", getattr(self, key))
        check(self.entropy_weight >= 0, "entropy_weight", "a number >= 0", self.entropy_weight)
        # 1 would freeze the baseline at the first reward: the EMA must move
        check(0 <= self.baseline_decay < 1, "baseline_decay", "a number in [0, 1)",
              self.baseline_decay)
        check(self.tanh_constant is None or self.tanh_constant > 0, "tanh_constant",
              "a number > 0 or null", self.tanh_constant)
        check(0 < self.top_fraction <= 1, "top_fraction", "a number in (0, 1]",
              self.top_fraction)
_F = TypeVar("_F", bound=Callable[..., Any])


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch ops on one intra-op thread, then restore the process setting.

    The controller's tensors are tiny: extra threads only spin. While children train on the
    same cores, the default thread pool made a batch update 40-150x slower (measured, 2 cores).
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _single_threaded(method: _F) -> _F:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _one_thread():
            return method(*args, **kwargs)
    return cast(_F, wrapper)


class _Policy(nn.Module):
    """LSTM policy over a sequence of categorical decisions of the given sizes."""

    def __init__(self, sizes: Sequence[int], hidden_size: int) -> None:
        super().__init__()
        self.sizes = tuple(sizes)
        offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.register_buffer("offsets", torch.as_tensor(offsets), persistent=False)
        total = int(offsets[-1])
        mask = torch.zeros(len(self.sizes), total, dtype=torch.bool)
        for t, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
            mask[t, lo:hi] = True
        self.register_buffer("mask", mask, persistent=False)
        self.start = nn.Parameter(torch.zeros(1, hidden_size))
        self.embed = nn.Embedding(total, hidden_size)  # row offsets[t] + a: choice a of decision t
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, total)  # rows offsets[t]:offsets[t+1]: decision t

    def reset(self, generator: torch.Generator, scale: float = 0.1) -> None:
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-scale, scale, generator=generator)

    def teacher_forced(self, actions: torch.Tensor) -> torch.Tensor:
        """Raw logits (B, T, total) for given action sequences (B, T), all steps in one call."""
        batch = actions.shape[0]
        inputs = self.start.expand(batch, 1, -1)
        if actions.shape[1] > 1:
            tokens = self.offsets[:-2].unsqueeze(0) + actions[:, :-1]
            inputs = torch.cat([inputs, self.embed(tokens)], dim=1)
        out, _ = self.lstm(inputs)
        return self.head(out)

    def step_logits(self, h: torch.Tensor, t: int) -> torch.Tensor:
        lo, hi = int(self.offsets[t]), int(self.offsets[t + 1])
        return F.linear(h, self.head.weight[lo:hi], self.head.bias[lo:hi])


class RNNController(Controller):
    """LSTM controller (NASNet/MnasNet) with an EMA baseline (or risk-seeking) and an entropy bonus.

    `algorithm="reinforce"`: one policy-gradient step per `update`, log-probabilities under the
    current policy. `algorithm="ppo"` (the paper's choice): `ppo_epochs` steps on the clipped
    surrogate, with importance ratios against the log-probability stored in each sample, which
    also corrects for samples drawn by an older policy (late rewards from parallel workers).

    Defaults follow NASNet (100 hidden units, baseline decay 0.95, init in [-0.1, 0.1]) except
    `lr`: NASNet's 0.00035 suits 8,000+ samples and barely moves in 1,000; 0.003 learns within
    a few hundred (bench/controllers_bench.py) and beat 0.01 (premature convergence) and 0.001
    (too slow) at 1,000 samples under a noisy reward. Adam makes the step size largely
    independent of the reward's scale. `entropy_weight` 1e-4 (NASNet 1e-5) keeps a little more
    exploration over a short search.

    Advantages: the default `advantage="baseline"` is reward minus an EMA baseline (NASNet).
    "risk_seeking" (Petersen et al., ICLR 2021) takes each reward's quantile among the last
    `rank_window` rewards, and only the top `top_fraction` get a positive advantage,
    (q - (1 - f)) / f; the rest get none: a search is judged by the best architecture it finds,
    and under a hard latency constraint the EMA form pushes the policy away from every
    over-target sample, off the constraint's edge where the optimum lies (bench/rnn_diagnosis.py).
    It keeps the samples at the edge, but over 20 seeds of the NAS-Bench-201 yardstick it did not
    beat the EMA form and it is slower on the synthetic task, so it is an option, not the default
    (bench/README.md, "Yardstick").
    """

    kind = "rnn"

    Options = RNNOptions

    def __init__(self, space: HasDecisions, *, seed: int = 0, options: RNNOptions | None = None,
                 **kwargs: Any) -> None:
        """`options`, or its fields as keywords (`RNNController(space, lr=0.01)`)."""
        super().__init__(space)
        opts = self.options = controller_options(RNNOptions, options, kwargs)
        self.algorithm, self.hidden_size, self.lr = opts.algorithm, opts.hidden_size, opts.lr
        self.entropy_weight, self.baseline_decay = opts.entropy_weight, opts.baseline_decay
        self.temperature, self.tanh_constant = opts.temperature, opts.tanh_constant
        self.ppo_epochs, self.ppo_clip = opts.ppo_epochs, opts.ppo_clip
        self.advantage, self.top_fraction = opts.advantage, opts.top_fraction
        self.rank_window = opts.rank_window
        self.seed = check_seed(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):  # module constructors draw from the global RNG
            self.policy = _Policy(self.sizes, self.hidden_size)
        self.policy.reset(self.generator)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        self.baseline: float | None = None
        self.history: list[float] = []  # the last `rank_window` rewards (risk-seeking ranks)
        self.version = 0  # number of updates made

    # -- policy ------------------------------------------------------------------------------
    def _shape(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    @_single_threaded
    @torch.no_grad()
    def sample(self, n: int) -> list[Sample]:
        """n sequences at once: one batched LSTM step per decision."""
        n = check_count(n)
        if n == 0:
            return []
        policy = self.policy
        x = policy.start.expand(n, -1).unsqueeze(1)
        state = None
        actions = torch.empty(n, len(self.sizes), dtype=torch.long)
        log_prob = torch.zeros(n, dtype=torch.float64)
        for t in range(len(self.sizes)):
            out, state = policy.lstm(x, state)
            logp = F.log_softmax(self._shape(policy.step_logits(out[:, 0], t)), dim=-1)
            a = torch.multinomial(logp.exp(), 1, generator=self.generator).squeeze(1)
            actions[:, t] = a
            log_prob += logp.gather(1, a.unsqueeze(1)).squeeze(1).double()
            x = policy.embed(policy.offsets[t] + a).unsqueeze(1)
        return [Sample(tuple(row), float(lp), version=self.version)
                for row, lp in zip(actions.tolist(), log_prob.tolist())]

    def log_probs(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence log-probability and entropy (summed over decisions), with gradients."""
        logits = self._shape(self.policy.teacher_forced(actions))
        mask = self.policy.mask.unsqueeze(0)
        logp_all = F.log_softmax(logits.masked_fill(~mask, -math.inf), dim=-1)
        tokens = self.policy.offsets[:-1].unsqueeze(0) + actions
        chosen = logp_all.gather(2, tokens.unsqueeze(2)).squeeze(2).sum(1)
        safe = logp_all.masked_fill(~mask, 0.0)
        entropy = -(safe.exp() * safe).masked_fill(~mask, 0.0).sum((1, 2))
        return chosen, entropy

    # -- learning ----------------------------------------------------------------------------
    def _advantages(self, rewards: np.ndarray) -> tuple[torch.Tensor, float]:
        """Advantages (EMA baseline or risk-seeking ranks, see the class docstring); then fold
        the rewards into the EMA baseline, which is kept as a statistic either way."""
        baseline = float(rewards.mean()) if self.baseline is None else self.baseline
        if self.advantage == "baseline":
            advantages = torch.as_tensor(rewards - baseline, dtype=torch.float32)
        else:
            self.history = (self.history + [float(r) for r in rewards])[-self.rank_window:]
            advantages = torch.as_tensor(top_utilities(rewards, np.asarray(self.history),
                                                       self.top_fraction), dtype=torch.float32)
        for r in rewards:  # per reward, so batch size does not change the EMA's horizon
            baseline = self.baseline_decay * baseline + (1.0 - self.baseline_decay) * float(r)
        self.baseline = baseline
        return advantages, float(advantages.mean())

    def _step(self, loss: torch.Tensor) -> bool:
        """One optimiser step; False (and no step) when the loss or a gradient is not finite:
        a policy with NaN weights would be saved and break every resume."""
        self.optimizer.zero_grad()
        if not bool(torch.isfinite(loss)):
            return False
        loss.backward()
        if not all(bool(torch.isfinite(p.grad).all()) for p in self.policy.parameters()
                   if p.grad is not None):
            self.optimizer.zero_grad()
            return False
        self.optimizer.step()
        return all(bool(torch.isfinite(p).all()) for p in self.policy.parameters())

    def _snapshot(self) -> dict[str, Any]:
        return {"policy": copy.deepcopy(self.policy.state_dict()),
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "baseline": self.baseline, "history": list(self.history)}

    def _restore(self, snap: dict[str, Any]) -> None:
        self.policy.load_state_dict(snap["policy"])
        self.optimizer.load_state_dict(snap["optimizer"])
        self.baseline = snap["baseline"]
        self.history = snap["history"]

    @_single_threaded
    def update(self, samples: Sequence[Sample], rewards: Sequence[float]) -> dict[str, Any]:
        values = self._check_batch(samples, rewards)
        if len(samples) == 0:
            return {}
        actions = torch.tensor([list(s.actions) for s in samples], dtype=torch.long)
        if bool((actions < 0).any()) or bool((actions >= torch.tensor(self.sizes)).any()):
            raise ValueError("update: a sample has an action outside its decision's choices")
        old = torch.tensor([s.log_prob for s in samples], dtype=torch.float32)
        staleness = float(np.mean([self.version - s.version for s in samples]))
        snap = self._snapshot()
        advantages, adv_mean = self._advantages(values)
        stats: dict[str, float] = {}
        ok = bool(torch.isfinite(advantages).all())
        if ok and self.algorithm == "reinforce":
            logp, entropy = self.log_probs(actions)
            loss = -(advantages * logp).mean() - self.entropy_weight * entropy.mean()
            ok = self._step(loss)
        elif ok:
            for _ in range(self.ppo_epochs):
                logp, entropy = self.log_probs(actions)
                ratio = torch.exp(logp - old)
                clipped = ratio.clamp(1.0 - self.ppo_clip, 1.0 + self.ppo_clip)
                surrogate = torch.minimum(ratio * advantages, clipped * advantages)
                loss = -surrogate.mean() - self.entropy_weight * entropy.mean()
                ok = self._step(loss)
                if not ok:
                    break
            if ok:
                with torch.no_grad():
                    outside = (ratio - 1.0).abs() > self.ppo_clip
                    stats["clip_fraction"] = float(outside.float().mean())
                    stats["approx_kl"] = float((old - logp).mean())
        if not ok:  # weights, optimiser, baseline and rank window as before this batch
            self._restore(snap)
            return {"skipped": 1.0, "reward_mean": float(values.mean()),
                    "reward_max": float(values.max()), "samples": float(len(samples)),
                    "skip_reason": "non-finite loss or gradient"}
        self.version += 1
        stats.update(loss=float(loss.detach()), baseline=float(self.baseline or 0.0),
                     reward_mean=float(values.mean()), reward_max=float(values.max()),
                     advantage_mean=adv_mean, entropy=float(entropy.detach().mean()),
                     log_prob=float(logp.detach().mean()), staleness=staleness,
                     samples=float(len(samples)))
        return stats

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "sizes": list(self.sizes), "hidden_size": self.hidden_size,
            "algorithm": self.algorithm, "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(), "baseline": self.baseline,
            "history": list(self.history), "version": self.version,
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore network, optimiser, baseline and generator; this controller's lr stays."""
        self._check_state(state)
        if int(state["hidden_size"]) != self.hidden_size:
            raise ValueError(f"controller state: hidden_size {state['hidden_size']} differs from "
                             f"the configured {self.hidden_size}")
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        baseline = state["baseline"]
        self.baseline = None if baseline is None else float(baseline)
        self.history = [float(r) for r in state.get("history", [])][-self.rank_window:]
        self.version = int(state["version"])
        self.generator.set_state(state["rng"])


def top_utilities(rewards: np.ndarray, history: np.ndarray, fraction: float) -> np.ndarray:
    """(q - (1 - fraction)) / fraction where positive, else 0; q = each reward's mid-rank
    quantile in `history` (ties count half), so the best reward of a window gets about 1."""
    below = (history[None, :] < rewards[:, None]).sum(1)
    ties = (history[None, :] == rewards[:, None]).sum(1)
    quantile = (below + 0.5 * ties) / len(history)
    return np.asarray(np.maximum(quantile - (1.0 - fraction), 0.0) / fraction)
