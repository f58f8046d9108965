"""Search controllers: the RNN policy (REINFORCE / PPO), regularized evolution and random-search
baselines.

Controllers emit integer actions only (one per `space.decisions` entry); `space.decode` turns
them into an `ArchSpec`. Pick one by name with `create_controller`.
"""
from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Callable

from .base import Controller, NoOptions, Sample
from .evolution import EvolutionController, EvolutionOptions
from .random_search import BandOptions, ConstrainedRandomController, RandomController
from .rnn import ALGORITHMS, RNNController, RNNOptions

if TYPE_CHECKING:
    from latency import LatencyPredictor
    from search_spaces.interface import SearchSpace

#: Controller names accepted by `create_controller` (and `controller.name` in YAML).
CONTROLLERS: dict[str, type[Controller]] = {
    "rnn": RNNController,
    "random": RandomController,
    "constrained_random": ConstrainedRandomController,
    "evolution": EvolutionController,
}


def controller_options(name: str) -> tuple[str, ...]:
    """The options a controller takes (the fields of its `Options` dataclass)."""
    return tuple(f.name for f in fields(_lookup(name).Options))


def _lookup(name: str) -> type[Controller]:
    if name not in CONTROLLERS:
        raise ValueError(f"controller.name: unknown controller {name!r} (expected one of "
                         f"{', '.join(CONTROLLERS)})")
    return CONTROLLERS[name]


def create_controller(name: str, space: SearchSpace[Any], *, seed: int = 0,
                      predictor: LatencyPredictor | None = None,
                      target_ms: float | None = None, options: Any = None,
                      **kwargs: Any) -> Controller:
    """Build a controller by name, with `options` (an object carrying its `Options` fields, such
    as the experiment config's `controller` section) or its options as keywords.

    `predictor` and `target_ms` are used by "constrained_random" (required there) and ignored by
    the others, so a search can always pass them. A keyword that is not one of the controller's
    options is a ValueError naming it.
    """
    make: Callable[..., Controller] = _lookup(name)  # each subclass takes its own options
    allowed = controller_options(name)
    for key in kwargs:
        if key not in allowed:
            raise ValueError(f"controller.{key}: unknown option for controller {name!r} "
                             f"(expected one of {', '.join(allowed) or 'none'})")
    if name == "constrained_random":
        if predictor is None or target_ms is None:
            raise ValueError("controller constrained_random: needs a latency predictor and "
                             "latency.target_ms")
        return make(space, predictor=predictor, target_ms=target_ms, seed=seed, options=options,
                   **kwargs)
    return make(space, seed=seed, options=options, **kwargs)


__all__ = ["ALGORITHMS", "BandOptions", "CONTROLLERS", "ConstrainedRandomController",
           "Controller", "EvolutionController", "EvolutionOptions", "NoOptions",
           "RNNController", "RNNOptions", "RandomController", "Sample", "controller_options",
           "create_controller"]
