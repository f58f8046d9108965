"""Search controllers: the RNN policy (REINFORCE / PPO), regularized evolution and random-search
baselines.

Controllers emit integer actions only (one per `space.decisions` entry); `space.decode` turns
them into an `ArchSpec`. Pick one by name with `create_controller`.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from .base import Controller, Sample
from .evolution import EvolutionController
from .random_search import ConstrainedRandomController, RandomController
from .rnn import ALGORITHMS, RNNController

#: Controller names accepted by `create_controller` (and `controller.name` in YAML).
CONTROLLERS: dict[str, type[Controller]] = {
    "rnn": RNNController,
    "random": RandomController,
    "constrained_random": ConstrainedRandomController,
    "evolution": EvolutionController,
}


def controller_options(name: str) -> tuple[str, ...]:
    """Keyword options a controller accepts (besides the space and the seed)."""
    cls = _lookup(name)
    params = inspect.signature(cls.__init__).parameters.values()
    return tuple(p.name for p in params
                 if p.kind is p.KEYWORD_ONLY and p.name not in ("seed", "predictor", "target_ms"))


def _lookup(name: str) -> type[Controller]:
    if name not in CONTROLLERS:
        raise ValueError(f"controller.name: unknown controller {name!r} (expected one of "
                         f"{', '.join(CONTROLLERS)})")
    return CONTROLLERS[name]


def create_controller(name: str, space: Any, *, seed: int = 0, predictor: Any = None,
                      target_ms: float | None = None, **kwargs: Any) -> Controller:
    """Build a controller by name.

    `predictor` and `target_ms` are used by "constrained_random" (required there) and ignored by
    the others, so a search can always pass them. Options set to None mean "the default" (so a
    config object may pass every field it knows); an option no controller has, or another
    controller's option set to a value, is a ValueError naming it.
    """
    make: Callable[..., Controller] = _lookup(name)  # each subclass takes its own options
    allowed = controller_options(name)
    known_anywhere = {k for other in CONTROLLERS for k in controller_options(other)}
    for key, value in kwargs.items():
        # another controller's option left at None (a config object passing every field) is fine
        if key not in allowed and (value is not None or key not in known_anywhere):
            raise ValueError(f"controller.{key}: unknown option for controller {name!r} "
                             f"(expected one of {', '.join(allowed)})")
    options = {k: v for k, v in kwargs.items() if v is not None}
    if name == "constrained_random":
        if predictor is None or target_ms is None:
            raise ValueError("controller constrained_random: needs a latency predictor and "
                             "latency.target_ms")
        return make(space, predictor=predictor, target_ms=target_ms, seed=seed, **options)
    return make(space, seed=seed, **options)


__all__ = ["ALGORITHMS", "CONTROLLERS", "ConstrainedRandomController", "Controller",
           "EvolutionController",
           "RNNController", "RandomController", "Sample", "controller_options",
           "create_controller"]
