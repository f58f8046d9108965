"""Shared test settings for the search-space tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tests run many small single-image forward passes, which gain nothing from more
    intra-op threads; on a shared 2-core machine oversubscribed OpenMP threads made them several
    times slower (e.g. 96 s -> 16 s for the fast ONNX parity subset). Restored after each module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
