"""Where and in what precision a child trains: one home for `child_training.device`/`precision`.

Why a module of its own: the proxy trainer, `mnas train`, the Ray actors (which train on the GPU
Ray assigned them) and the supernet all resolve the same two settings the same way, and every
way a request cannot be met (CUDA asked for where there is none, a GPU index past the last) is one
ValueError naming the key, which the CLI turns into one line and exit 2.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Sequence

import torch

#: What `child_training.device` accepts besides `cuda:N`.
DEVICES = ("auto", "cpu", "cuda")
#: `child_training.precision`: autocast dtype of the forward pass (fp32 = no autocast).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_CUDA_N = re.compile(r"cuda:(\d+)")
#: Share of the device's free memory a data set may take to be held there (the rest is for the
#: model, activations and the optimiser).
DATA_ON_DEVICE_SHARE = 0.5


def check_device(value: object) -> None:
    """Syntax only (a config may be written on a machine without the GPU it names)."""
    if not isinstance(value, str) or not (value in DEVICES or _CUDA_N.fullmatch(value)):
        raise ValueError(f"child_training.device: must be one of {', '.join(DEVICES)} or "
                         f"cuda:N, got {value!r}")


def resolve_device(spec: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda`/`cuda:N` must exist here."""
    check_device(spec)
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda", torch.cuda.current_device())
    if not torch.cuda.is_available():
        raise ValueError(f"child_training.device: {spec!r} requested but CUDA is not available "
                         f"on this machine (torch {torch.__version__}); use auto or cpu")
    match = _CUDA_N.fullmatch(spec)
    index = int(match.group(1)) if match is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"child_training.device: {spec!r} requested but this machine has "
                         f"{count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def check_precision(precision: object, device: torch.device | None = None) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"child_training.precision: must be one of {', '.join(PRECISIONS)}, "
                         f"got {precision!r}")
    if device is not None and device.type == "cuda" and precision == "bf16" \
            and not torch.cuda.is_bf16_supported():
        raise ValueError(f"child_training.precision: bf16 is not supported by {device} "
                         f"({torch.cuda.get_device_name(device)}); use fp16 or fp32")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """Mixed precision for the forward pass and the loss (a no-op for fp32)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    context: contextlib.AbstractContextManager[object] = torch.autocast(device_type=device.type,
                                                                        dtype=dtype)
    return context


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """True when `nbytes` of data can live on `device` (always on the CPU)."""
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return bool(nbytes <= DATA_ON_DEVICE_SHARE * free)


def on_device(owner: object, tensors: tuple[torch.Tensor, ...],
              device: torch.device) -> tuple[torch.Tensor, ...]:
    """`tensors` (a data set's, `owner`) copied to `device` once per process when they fit
    there, else left in host memory (the trainer then moves them batch by batch). A worker trains
    child after child on the same data: only the first pays the copy. One data set is held at a
    time; a new owner replaces the last."""
    if device.type == "cpu":
        return tensors
    held = _HELD.get("entry")
    if held is None or held[0] is not owner or held[1] != device:
        _HELD.clear()  # free the last copy before making the next
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        placed = tuple(t.to(device) for t in tensors) if fits_on_device(nbytes, device) \
            else tensors
        _HELD["entry"] = held = (owner, device, placed)
    return held[2]


_HELD: dict[str, tuple[object, torch.device, tuple[torch.Tensor, ...]]] = {}


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG `torch.random.fork_rng` must save and restore."""
    return [device.index or 0] if device.type == "cuda" else []


def ray_assigned_device(gpu_ids: Sequence[int | str], visible: str | None = None) -> str:
    """The `child_training.device` of an actor Ray gave `gpu_ids` (from `ray.get_gpu_ids()`).

    Ray sets CUDA_VISIBLE_DEVICES to the assigned ids, so torch numbers them from 0; where that
    variable lists more devices (Ray told not to set it), the index is the first id's position
    in it. No GPU assigned -> "cpu", so GPU-less actors never share a GPU Ray did not give them.
    """
    if not gpu_ids:
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    listed = [v.strip() for v in (visible or "").split(",") if v.strip()]
    first = str(gpu_ids[0])
    return f"cuda:{listed.index(first) if first in listed else 0}"

