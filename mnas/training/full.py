"""Training a found architecture to convergence (`mnas train`): a checkpoint per epoch, resume,
TensorBoard, and the ONNX export of the result.

Writes, in its output directory: `checkpoint.pt` (every epoch, atomically), `tb/` (TensorBoard),
`result.json` and `model.onnx`. Accuracy is measured on the validation split held out from the
training data.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from mnas.fileio import atomic_torch_save, atomic_write_json, read_torch_file
from mnas.training.data import load_dataset
from mnas.training.trainer import Trainer, TrainConfig, torch_threads
from search_spaces import (FamilyModel, Network, build_network, count_macs, count_params,
                           network_strings)
from search_spaces.onnx_export import export_onnx

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
ONNX = "model.onnx"
TB_DIR = "tb"
#: `child_training` fields a resumed `mnas train` may change (a longer run, another time limit,
#: another device: a checkpoint loads onto any);
#: not to be confused with `SEARCH_RESUME_MUTABLE`, the config keys a resumed search may change.
TRAIN_RESUME_MUTABLE = ("epochs", "steps", "time_limit_s", "device")


def _tensorboard_writer(path: Path) -> Any:
    """Imported lazily, here only until it moves to mnas/tracking.py (the one module meant to
    import tensorboard)."""
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(path))


def _resume(trainer: Trainer, ckpt: Path, arch: Network,
            config: TrainConfig) -> list[dict[str, Any]]:
    state = read_torch_file(ckpt, "training checkpoint")
    try:
        meta = json.loads(state["meta"])
        meta["blocks"], meta["stem_stride"], meta["config"], meta["history"]
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{ckpt}: not an mnas training checkpoint (no valid 'meta')") from None
    if not isinstance(state.get("trainer"), dict) or not isinstance(meta["config"], dict):
        raise ValueError(f"{ckpt}: not an mnas training checkpoint")
    if meta["blocks"] != network_strings(arch) or meta["stem_stride"] != arch.stem_stride:
        raise ValueError(f"{ckpt}: checkpoint is for a different architecture "
                         f"({' '.join(meta['blocks'])}, stem stride {meta['stem_stride']})")
    mine = {k: v for k, v in config.to_dict().items() if k not in TRAIN_RESUME_MUTABLE}
    theirs = {k: v for k, v in meta["config"].items() if k not in TRAIN_RESUME_MUTABLE}
    changed = sorted(k for k in mine if mine[k] != theirs.get(k))
    if changed:
        raise ValueError(f"{ckpt}: child_training.{changed[0]} differs from the checkpointed "
                         f"run (only {', '.join(TRAIN_RESUME_MUTABLE)} may change on "
                         "--resume)")
    try:
        trainer.load_state_dict(state["trainer"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{ckpt}: the checkpoint's trainer state does not load "
                         f"({type(exc).__name__})") from None
    return list(meta["history"])


def _shape_fields(arch: Network) -> dict[str, Any]:
    """Stem, head and dropout of a grammar network (a family's are fixed by its name)."""
    if isinstance(arch, FamilyModel):
        return dict(stem_stride=arch.stem_stride)
    return dict(stem_filters=arch.stem_filters, stem_stride=arch.stem_stride,
                head_filters=arch.head_filters, dropout=arch.dropout,
                activation=arch.activation)


def train_full(arch: Network, config: TrainConfig, out: Path, *, resume: bool = False,
               progress: bool = True) -> dict[str, Any]:
    """Train with a checkpoint per epoch; return (and write) the result record."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT
    if ckpt.exists() and not resume:
        raise ValueError(f"{ckpt} exists: pass --resume to continue it, or choose another --out")
    data = load_dataset(config.data)
    start = time.perf_counter()
    with torch_threads(config.threads):
        torch.manual_seed(config.seed)
        model = build_network(arch, data.num_classes, data.in_channels)
        params, macs = count_params(model), count_macs(model, data.input_size, data.in_channels)
        trainer = Trainer(model, data, config)
        history = _resume(trainer, ckpt, arch, config) if resume and ckpt.exists() else []
        status = _epochs(trainer, arch, config, ckpt, history, out, progress)
        model = model.to("cpu", memory_format=torch.contiguous_format)  # ONNX export on CPU
        if status == "ok":
            export_onnx(model, out / ONNX, data.input_size, data.in_channels)
    last = history[-1] if history else {}
    result = dict(status=status, accuracy=last.get("accuracy"), train_loss=last.get("loss"),
                  best_accuracy=max((h["accuracy"] for h in history), default=None),
                  epochs=trainer.epochs_done, params=params, macs=macs,
                  input_size=data.input_size, num_classes=data.num_classes,
                  train_images=len(data.train_y), val_images=len(data.val_y),
                  blocks=network_strings(arch), **_shape_fields(arch),
                  wall_time_s=round(time.perf_counter() - start, 2),
                  onnx=ONNX if status == "ok" else None, history=history,
                  child_training=config.to_dict())
    atomic_write_json(out / RESULT, result, indent=2)
    return result


def _epochs(trainer: Trainer, arch: Network, config: TrainConfig, ckpt: Path,
            history: list[dict[str, Any]], out: Path, progress: bool) -> str:
    """Train epoch by epoch from where the trainer stands; log, evaluate and checkpoint."""
    from mnas.progress import progress_bar

    writer = _tensorboard_writer(out / TB_DIR)
    bar = progress_bar(trainer.total_steps, initial=trainer.step, unit="step", enabled=progress,
                       desc="train")
    status = "ok"
    try:
        before = trainer.step
        for outcome in trainer.train_epochs():
            bar.update(trainer.step - before)
            before = trainer.step
            if outcome.status == "diverged":
                status = "diverged"
                break
            acc = trainer.evaluate()
            epoch = trainer.epochs_done
            history.append(dict(epoch=round(epoch, 4), loss=outcome.loss, accuracy=acc,
                                images_per_s=round(outcome.images / outcome.seconds, 1)))
            writer.add_scalar("train/loss", outcome.loss, trainer.step)
            writer.add_scalar("val/accuracy", acc, trainer.step)
            writer.add_scalar("train/lr", trainer.optimizer.param_groups[0]["lr"], trainer.step)
            writer.flush()
            bar.set_postfix(epoch=f"{epoch:.1f}", loss=f"{outcome.loss:.3f}", acc=f"{acc:.3f}")
            meta = dict(blocks=network_strings(arch), stem_stride=arch.stem_stride,
                        config=config.to_dict(), history=history)
            atomic_torch_save(dict(trainer=trainer.state_dict(), meta=json.dumps(meta)), ckpt)
    finally:
        bar.close()
        writer.close()
    return status
