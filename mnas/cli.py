"""The `mnas` command. Each subcommand lives in its own module with a `register(subparsers)`
function; user-input errors (ValueError, missing files) become one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: Modules that each add subcommands (kept explicit: only what exists is listed).
COMMAND_MODULES = (
    "mnas.commands.baselines",
    "mnas.commands.describe",
    "mnas.commands.export",
    "mnas.commands.latency",
    "mnas.commands.scale",
    "mnas.commands.search",
    "mnas.commands.supernet",
    "mnas.commands.train",
)


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnas",
        description="Platform-aware neural architecture search (MnasNet) on your own device.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"mnas {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused (a name too long, a full disk): one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mnas {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
