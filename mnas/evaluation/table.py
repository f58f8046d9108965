"""The `table` evaluator: a child's accuracy looked up in a CSV column (e.g. NAS-Bench-201's
`cifar10_test`), keyed by the architecture's text form. Loaded once; each lookup is a dict get."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mnas.tables import lookup, read_column

if TYPE_CHECKING:
    from search_spaces.interface import SearchSpace

from . import EvalResult


class TableEvaluator:
    """Accuracy from `column` of the CSV at `path`. `percent` (default true): the column holds
    percentages and is divided by 100, so accuracy is a fraction like the train evaluator's."""

    remote = False

    def __init__(self, space: SearchSpace[Any], path: str | None, column: str | None, *,
                 key_column: str = "arch", percent: bool = True) -> None:
        self.space, self.path, self.column = space, path, column
        self.scale = 0.01 if percent else 1.0
        self.table = read_column(path, column, space=space, key_column=key_column,
                                 path_key="evaluator.path", column_key="evaluator.column")

    def evaluate(self, arch: Any) -> EvalResult:
        return EvalResult(lookup(self.table, self.space, arch, f"evaluator.path: {self.path}")
                          * self.scale)
