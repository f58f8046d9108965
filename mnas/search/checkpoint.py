"""The controller checkpoint (`controller.pt`): written atomically, read with weights_only=True.

It holds what the history cannot: the controller's state, the samples drawn but not yet used for
an update (`pending`), and the samples in flight (re-run on resume). Only tensors, numbers,
strings, lists and dicts go in, so `torch.load(weights_only=True)` can read it back safely.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch

from mnas.fileio import atomic_torch_save, read_torch_file
from mnas.search.rundir import RunDir

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointState:
    """Everything a resume needs besides history.jsonl."""

    controller: dict[str, Any]
    next_index: int
    updates: int
    in_flight: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "controller": self.controller,
                "next_index": self.next_index, "updates": self.updates,
                "in_flight": self.in_flight, "pending": self.pending}


def sample_to_dict(sample: Any) -> dict[str, Any]:
    """A controller Sample as plain data (tuples become lists; numpy scalars become Python)."""
    if not is_dataclass(sample):
        raise TypeError(f"controller sample {type(sample).__name__} is not a dataclass")
    return {f.name: _plain(getattr(sample, f.name)) for f in fields(sample)}


def sample_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a Sample; tuple-typed fields (e.g. actions) get their tuples back."""
    values = {}
    for f in fields(cls):
        if f.name in data:
            value = data[f.name]
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()  # numpy scalar
    return value


def save_checkpoint(run_dir: str | os.PathLike[str], state: CheckpointState) -> Path:
    """Written atomically (temp file, fsync, os.replace): never a torn checkpoint."""
    return atomic_torch_save(state.to_dict(), RunDir(run_dir).checkpoint)


def load_checkpoint(run_dir: str | os.PathLike[str]) -> CheckpointState | None:
    """The saved state, or None when the run dir has no checkpoint yet."""
    path = RunDir(run_dir).checkpoint
    if not path.exists():
        return None
    data = read_torch_file(path, "controller checkpoint")
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not an mnas controller checkpoint (version {FORMAT_VERSION})")
    for key, kind in _FIELDS.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise ValueError(f"{path}: corrupt controller checkpoint ({key!r} missing or not "
                             f"{kind.__name__})")
    return CheckpointState(controller=data["controller"], next_index=data["next_index"],
                           updates=data["updates"], in_flight=list(data["in_flight"]),
                           pending=list(data["pending"]))


#: What every checkpoint holds, with its type (checked on load: a damaged or hand-made file
#: is one line, not a KeyError).
_FIELDS: dict[str, type] = {"controller": dict, "next_index": int, "updates": int,
                            "in_flight": list, "pending": list}
