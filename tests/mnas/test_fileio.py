"""Interrupts held during writes: a Ctrl-C in the middle of a checkpoint or history write lands
after it, as the KeyboardInterrupt the search turns into a clean stop."""
from __future__ import annotations

import os
import signal
import threading

import pytest
import torch

import mnas.search.checkpoint as checkpoint
from mnas.search.checkpoint import CheckpointState, load_checkpoint, save_checkpoint
from mnas.fileio import atomic_torch_save, interrupts_deferred
from mnas.search.history import HistoryRecord, HistoryWriter, load_history

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def test_a_ctrl_c_inside_the_block_is_raised_after_it():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")
        steps.append("not reached")
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_goes_to_the_handler_in_place_once_and_handlers_are_restored():
    calls = []

    def handler(signum, frame):
        calls.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert calls == []
        assert calls == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_it_changes_nothing():
    errors = []

    def work():
        try:
            with interrupts_deferred():
                pass
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == []


def test_ctrl_c_during_torch_save_leaves_a_whole_checkpoint(tmp_path, monkeypatch):
    real_save = torch.save

    def interrupted_save(obj, handle):  # the signal arrives while the zip file is written
        os.kill(os.getpid(), signal.SIGINT)
        real_save(obj, handle)

    monkeypatch.setattr(checkpoint.torch, "save", interrupted_save)
    state = CheckpointState(controller={"w": torch.ones(3)}, next_index=7, updates=2,
                            in_flight=[], pending=[])
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None and loaded.next_index == 7 and loaded.updates == 2
    assert [p.name for p in tmp_path.iterdir()] == ["controller.pt"]


def test_ctrl_c_during_a_history_append_leaves_the_whole_line(tmp_path, monkeypatch):
    path = tmp_path / "history.jsonl"
    record = HistoryRecord(index=0, arch=("r1_k3_s11_e1_i8_o8",), status="ok", reward=0.5)
    writer = HistoryWriter(path)
    real_flush = writer._file.flush

    def interrupted_flush():  # the signal arrives between the write and the fsync
        os.kill(os.getpid(), signal.SIGINT)
        real_flush()

    monkeypatch.setattr(writer._file, "flush", interrupted_flush)
    with pytest.raises(KeyboardInterrupt):
        writer.append(record)
    monkeypatch.undo()
    writer.close()
    assert load_history(path) == [record]


def test_atomic_torch_save_replaces_the_file_and_a_failed_write_leaves_the_old_one(tmp_path):
    path = tmp_path / "checkpoint.pt"  # `mnas train`'s per-epoch checkpoint
    atomic_torch_save({"epoch": 1}, path)
    with pytest.raises(AttributeError, match="pickle"):
        atomic_torch_save({"epoch": 2, "bad": lambda: None}, path)  # cannot be pickled
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
