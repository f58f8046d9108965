"""The `train` evaluator (the default): the child is trained briefly on the proxy task.

It is `remote`: the search hands its children to the executor pool (Ray actors, or in-process
with `--local`), which calls the trainer itself; `evaluate` is the same path for one child in this
process (what `LocalExecutor` does)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mnas.search.executor import Trainer, resolve_trainer, run_child

if TYPE_CHECKING:
    from mnas.training.trainer import TrainConfig

from . import EvalResult, as_result


class TrainEvaluator:
    remote = True

    def __init__(self, train_config: TrainConfig | None, *, num_classes: int | None = None,
                 trainer: str | Trainer | None = None) -> None:
        self.train_config, self.num_classes = train_config, num_classes
        self.trainer = resolve_trainer(trainer)

    def evaluate(self, arch: Any) -> EvalResult:
        return as_result(run_child(self.trainer, arch, self.train_config, self.num_classes))
