"""The shipped experiments: found by name from any directory, and installed inside the wheel."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mnas.config.experiments import (QUICKSTART, experiment_path, experiments_dir,
                                     shipped_experiments)

ROOT = Path(__file__).resolve().parents[3]


def test_every_file_in_experiments_is_shipped_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout: names must not depend on the CWD
    names = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
    assert "quickstart" in names and shipped_experiments() == names
    for name in names:
        assert Path(experiment_path(name)).read_bytes() == (ROOT / "experiments" /
                                                             f"{name}.yaml").read_bytes()
        assert experiment_path(f"{name}.yaml") == experiment_path(name)
    assert QUICKSTART == experiments_dir() / "quickstart.yaml" and QUICKSTART.is_file()


def test_a_file_in_the_cwd_wins_and_unknown_names_pass_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("quickstart.yaml").write_text("name: mine\n")
    assert experiment_path("quickstart.yaml") == "quickstart.yaml"
    assert experiment_path("nope") == "nope"  # the loader names it as typed
    assert experiment_path("sub/quickstart") == "sub/quickstart"  # a path, not a name


def test_search_by_name_reaches_the_loader(tmp_path, monkeypatch, capsys):
    """`mnas search cifar10 --set ...` loads the shipped file (here refused by a bad override,
    which proves the file was found and read) from a directory without an experiments/."""
    from mnas.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["search", "cifar10", "--set", "budget.children=-1", "--local"]) == 2
    err = capsys.readouterr().err
    assert "budget.children" in err and "cifar10.yaml" in err
    assert main(["search", "no_such_experiment", "--local"]) == 2
    assert "no_such_experiment" in capsys.readouterr().err


def test_the_wheel_ships_every_experiment(tmp_path):
    """`pip install .` (not editable) puts each experiments/*.yaml inside the package, where
    experiments_dir() looks first; git holds one copy."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("mnas", "search_spaces", "controllers", "latency", "experiments"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and "No module named pip" in out.stderr:
        pytest.skip("pip is not installed in this interpreter")
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("mnas-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for yaml_file in (ROOT / "experiments").glob("*.yaml"):
        assert f"mnas/experiments/{yaml_file.name}" in names
    assert "mnas/config/experiments.py" in names
    # every package of the source tree is in the wheel (a new subpackage left out of setup.cfg
    # would work in the editable checkout and be missing after `pip install .`)
    for name in ("mnas", "search_spaces", "controllers", "latency"):
        for init in (ROOT / name).rglob("__init__.py"):
            assert str(init.relative_to(ROOT)) in names, init
