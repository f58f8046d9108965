"""Latency from tables measured elsewhere, for users without the device in hand.

- `csv_column`: one latency per architecture, a CSV column keyed by the architecture string (the
  NAS-Bench-201 device columns: `latency_ms_pixel3`, `latency_ms_raspi4`, ...).
- `ofa_yaml` / `proxyless_yaml`: per-layer YAML tables in Once-for-All's and ProxylessNAS's
  formats (`latency.layer_tables`), summed over a network's layers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from mnas.tables import lookup, read_column

if TYPE_CHECKING:
    from search_spaces.interface import SearchSpace


class CsvColumnPredictor:
    """Latency (ms) of each architecture from `column` of the CSV `table` (keyed by `key_column`,
    default `arch`). An architecture without a row is a ValueError naming it."""

    def __init__(self, space: SearchSpace[Any], table: str | None, *, column: str | None = None,
                 key_column: str = "arch") -> None:
        self.space, self.path = space, table
        self.values = read_column(table, column, space=space, key_column=key_column,
                                  path_key="latency.table", column_key="latency.kwargs.column")

    def predict(self, arch: Any) -> float:
        return lookup(self.values, self.space, arch, f"latency.table: {self.path}")

    def predict_many(self, archs: Sequence[Any]) -> np.ndarray:
        return np.array([self.predict(a) for a in archs], dtype=float)
