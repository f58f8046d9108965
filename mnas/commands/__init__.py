"""Subcommands of the `mnas` CLI, one module each."""
