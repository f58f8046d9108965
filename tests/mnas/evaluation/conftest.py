"""Tiny NAS-Bench-201-style tables written by the tests themselves (never the shared data), and a
tiny supernet trained here (seconds) for `evaluator: supernet`."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

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


#: A 2-block MnasNet space at 8x8 and synthetic data: its supernet trains in seconds.
SN_SPACE = {"input_size": 8, "num_classes": 4, "stem_filters": 4, "stem_stride": 1,
         "head_filters": 16, "width_divisor": 4,
         "base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 4, "layers": 1},
                  {"kernel": 3, "stride": 2, "expansion": 6, "filters": 8, "layers": 2}]}
SN_DATA = {"name": "synthetic", "input_size": 8, "synthetic_samples": 160, "num_classes": 4}


def write_config(path: Path, checkpoint: Path, runs: Path, *, space=None, data=None,
                 **sections) -> Path:
    config = {
        "name": "tiny-sn", "seed": 1, "search_space": space or SN_SPACE,
        "latency": {"predictor": "flops", "kwargs": {"ms_per_mmac": 1.0}, "target_ms": 0.05},
        "evaluator": {"name": "supernet"},
        "child_training": {"data": data or SN_DATA, "batch_size": 16, "lr": 0.05, "threads": 1,
                           "warmup_epochs": 0.0},
        "supernet": {"checkpoint": str(checkpoint), "epochs": 2, "recalibration_batches": 2,
                     "val_images": None},
        "budget": {"children": 12, "batch": 4},
        "ray": {"workers": 2},
        "output": {"dir": str(runs), "tensorboard": False, "plot": False},
    }
    config.update(sections)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(config, checkpoint) of a supernet trained by `mnas supernet train` (2 tiny epochs)."""
    base = tmp_path_factory.mktemp("supernet")
    config = write_config(base / "sn.yaml", base / "sn.pt", base / "runs")
    from mnas.cli import main

    assert main(["supernet", "train", str(config), "--quiet"]) == 0
    return config, base / "sn.pt"
