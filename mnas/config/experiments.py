"""The shipped experiments (`experiments/*.yaml`), found by name from any directory.

They live once in git, in the checkout's top-level `experiments/`; a wheel installs them inside the
package as `mnas/experiments/` (setup.cfg maps one onto the other). This module imports nothing
heavy: `mnas COMMAND --help` resolves names through it without loading torch."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def experiments_dir() -> Path:
    """Where the shipped experiments are: inside the installed package, else in the checkout."""
    installed = _PACKAGE / "experiments"
    return installed if installed.is_dir() else _PACKAGE.parent / "experiments"


def shipped_experiments() -> list[str]:
    """Names of the shipped experiments (`quickstart`, `cifar10`, ...)."""
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def experiment_path(name_or_path: str) -> str:
    """A config argument as a file path: an existing file as given, else a shipped experiment by
    name (`quickstart` or `quickstart.yaml`). Anything else is returned unchanged, so the loader
    reports the missing file by the name the user typed."""
    if Path(name_or_path).exists():
        return name_or_path
    shipped = experiments_dir() / Path(name_or_path).name
    for candidate in (shipped, shipped.with_name(shipped.name + ".yaml")):
        if "/" not in name_or_path and candidate.suffix == ".yaml" and candidate.is_file():
            return str(candidate)
    return name_or_path


QUICKSTART = experiments_dir() / "quickstart.yaml"
