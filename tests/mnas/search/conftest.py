"""Shared pieces of the hostile-user tests (test_hostile.py, test_hostile_processes.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mnas.cli import main

ROOT = Path(__file__).resolve().parents[3]
TINY: dict[str, Any] = {**yaml.safe_load((Path(__file__).parent / "tiny_search.yaml").read_text()),
                        "reward": {"failed_reward": -0.5}, "budget": {"children": 4, "batch": 2}}


def _config(tmp_path: Path, **sections: Any) -> Path:
    data = {**TINY, **sections}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def search(*args: Any) -> int:
    return main(["search", *map(str, args), "--local", "--no-progress"])


def _one_line(capsys: pytest.CaptureFixture[str], *fragments: str,
              prefix: str = "mnas search: error: ") -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _cli(*args: Any, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mnas.cli", "search", *map(str, args),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)

def _fake_result(arch: Any) -> dict[str, Any]:
    return {"status": "ok", "accuracy": 0.5 + 0.01 * sum(b.kernel for b in arch.blocks),
            "train_loss": 1.0, "epochs": 1.0, "images_per_s": 1.0, "wall_time_s": 0.0,
            "params": 10, "macs": 10, "error": None}
