"""Tiny NAS-Bench-201-style tables written by the tests themselves (never the shared data)."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from search_spaces import NasBench201Space

SPACE = NasBench201Space()


def accuracy_of(actions) -> float:
    """A known, non-trivial accuracy (percent) for every cell: conv edges score."""
    return round(50.0 + 7.0 * sum(a == 3 for a in actions) + 3.0 * sum(a == 2 for a in actions)
                 - 1.0 * sum(a == 0 for a in actions), 4)


def latency_of(actions) -> float:
    return round(0.5 + 2.0 * sum(a == 3 for a in actions) + 0.7 * sum(a == 2 for a in actions)
                 + 0.1 * sum(a == 4 for a in actions), 4)


def write_table(path: Path, rows=None) -> Path:
    """Every cell (or `rows` action tuples) with an accuracy and a latency column."""
    lines = ["index,arch,cifar10_test,latency_ms_pixel3"]
    for i, actions in enumerate(rows if rows is not None else
                                itertools.product(range(5), repeat=6)):
        text = SPACE.decode(actions).to_string()
        lines.append(f"{i},{text},{accuracy_of(actions)},{latency_of(actions)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    return write_table(tmp_path / "nb201.csv")
