"""The controller interface every search strategy implements.

A controller proposes architectures as integer actions, one per `space.decisions` entry, and
learns from rewards that may come back late, out of order and only for some samples (children
train in parallel and some fail). Each `Sample` therefore carries everything `update` needs.
"""
from __future__ import annotations

import abc
import json
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TypeVar

import numpy as np

from mnas.config.loader import load_section

if TYPE_CHECKING:
    from search_spaces.interface import HasDecisions
    from _typeshed import DataclassInstance

_O = TypeVar("_O", bound="DataclassInstance")


@dataclass(frozen=True)
class NoOptions:
    """The options of a controller that has none."""


def controller_options(schema: type[_O], options: Any, kwargs: Mapping[str, Any]) -> _O:
    """A controller's options: `options` (already validated, e.g. the experiment config's
    `controller` section, which carries every controller's fields) narrowed to `schema`, or
    keyword arguments checked by the config loader (errors name `controller.<key>`)."""
    if options is None:
        return load_section(schema, dict(kwargs), "controller")
    if kwargs:
        raise TypeError("pass controller options either as `options` or as keywords, not both")
    if type(options) is schema:
        return options
    return schema(**{f.name: getattr(options, f.name) for f in fields(schema)})


@dataclass(frozen=True)
class Sample:
    """One proposed architecture.

    `actions` index the choices of `space.decisions` in order; `log_prob` is the log-probability
    the sampling policy gave them (what PPO's importance ratio needs when the reward arrives
    late); `version` is how many updates the controller had made when it sampled (staleness);
    `predicted_ms` is the latency a constrained controller predicted, else None.
    """

    actions: tuple[int, ...]
    log_prob: float
    version: int = 0
    predicted_ms: float | None = None


class Controller(abc.ABC):
    """Proposes architectures of a search space and learns from their rewards."""

    #: Short name used by `create_controller` and stored in the state dict.
    kind: str = "controller"
    #: The dataclass of its options (the `controller:` keys of an experiment config it reads).
    Options: type = NoOptions

    def __init__(self, space: HasDecisions) -> None:
        decisions = list(space.decisions)
        if not decisions:
            raise ValueError("controller: the search space has no decisions")
        self.space = space
        #: Number of choices per decision, cached (space.decisions is rebuilt on each access).
        self.sizes: tuple[int, ...] = tuple(int(d.size) for d in decisions)
        self.decision_names: tuple[str, ...] = tuple(d.name for d in decisions)

    @abc.abstractmethod
    def sample(self, n: int) -> list[Sample]:
        """Propose `n` architectures."""

    @abc.abstractmethod
    def update(self, samples: Sequence[Sample], rewards: Sequence[float]) -> dict[str, Any]:
        """Learn from rewards of any subset of earlier samples, in any order; returns statistics."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (torch.load(weights_only=True)-safe types)."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict`; ValueError if it belongs to another controller or space."""

    # -- helpers shared by implementations ---------------------------------------------------
    def _check_state(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping):
            raise ValueError(f"controller state: expected a mapping, got {type(state).__name__}")
        if state.get("kind") != self.kind:
            raise ValueError(f"controller state: saved by {state.get('kind')!r}, "
                             f"cannot load into {self.kind!r}")
        if list(state.get("sizes", [])) != list(self.sizes):
            raise ValueError("controller state: saved for a search space with different decisions")

    def _check_batch(self, samples: Sequence[Sample], rewards: Sequence[float]) -> np.ndarray:
        if len(samples) != len(rewards):
            raise ValueError(f"update: {len(samples)} samples but {len(rewards)} rewards")
        values = np.asarray([float(r) for r in rewards], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("update: rewards must be finite numbers")
        for s in samples:
            if len(s.actions) != len(self.sizes):
                raise ValueError(f"update: sample has {len(s.actions)} actions, "
                                 f"the space {len(self.sizes)} decisions")
        return values

    def uniform_log_prob(self) -> float:
        """Log-probability of any action tuple under uniform sampling."""
        return -float(sum(math.log(s) for s in self.sizes))


def check_seed(seed: Any) -> int:
    """A controller's seed (the experiment's `seed`) as an int >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"controller.seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def check_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"sample: n must be a non-negative integer, got {n!r}")
    return int(n)


def numpy_rng_state(rng: np.random.Generator) -> str:
    """A numpy Generator's state as JSON (its 128-bit integers do not fit tensors)."""
    return json.dumps(rng.bit_generator.state)


def restore_numpy_rng(text: str) -> np.random.Generator:
    state = json.loads(text)
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
