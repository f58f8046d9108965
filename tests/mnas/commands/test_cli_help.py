"""`mnas --help` and `mnas COMMAND --help` answer without importing torch, Ray, onnxruntime or
TensorBoard (seconds saved on every call): checked in a fresh interpreter."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: Run the CLI's parser as the console script does, then report what it imported.
PROBE = """
import sys
from mnas.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code == 0, exc.code
heavy = sorted(m for m in ("torch", "ray", "onnxruntime", "tensorboard") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], ["describe", "--help"], ["search", "--help"],
                                  ["export", "--help"], ["train", "--help"],
                                  ["latency", "build", "--help"]], ids=" ".join)
def test_help_does_not_import_torch(argv: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: mnas" in out.stdout
    heavy = out.stdout.rsplit("HEAVY=", 1)[1].strip()
    assert heavy == "", f"mnas {' '.join(argv)} imported {heavy}"
