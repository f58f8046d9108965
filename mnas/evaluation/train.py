"""The `train` evaluator (the default): the child is trained briefly on the proxy task.

It is `remote`: the search hands its children to the executor pool (Ray actors, or in-process
with `--local`), which calls the trainer itself; `evaluate` is the same path for one child in this
process (what `LocalExecutor` does)."""
from __future__ import annotations

from typing import Any

from mnas.search.executor import resolve_trainer, run_child

from . import EvalResult, as_result


class TrainEvaluator:
    remote = True

    def __init__(self, train_config: Any, *, num_classes: int | None = None,
                 trainer: Any = None) -> None:
        self.train_config, self.num_classes = train_config, num_classes
        self.trainer = resolve_trainer(trainer)

    def evaluate(self, arch: Any) -> EvalResult:
        return as_result(run_child(self.trainer, arch, self.train_config, self.num_classes))
