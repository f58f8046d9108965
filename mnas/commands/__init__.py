"""Subcommands of the `mnas` CLI, one module each."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    #: What `mnas.cli` hands each command's `register` (typeshed's generic, not subscriptable at
    #: run time, hence the type-checking-only alias).
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
