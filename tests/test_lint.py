"""`make lint` holds in the fast suite too: ruff and mypy (pyproject.toml) on the tree, so a
change that breaks them fails before it merges, not only in CI. Skipped where they are not
installed (they come with the `test` extras)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -c constraints.txt -e '.[test]')")
    return path


@pytest.mark.parametrize("command", [["ruff", "check", "."], ["mypy"]], ids=["ruff", "mypy"])
def test_lint_passes(command: list[str]) -> None:
    out = subprocess.run([_tool(command[0]), *command[1:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"`{' '.join(command)}` fails:\n{out.stdout}{out.stderr}"
