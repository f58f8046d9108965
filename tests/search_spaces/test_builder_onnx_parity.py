"""Every reference network (block-grammar and the families outside it) and random MnasNetSpace
networks run forward and export to ONNX, and
onnxruntime reproduces the PyTorch outputs.

Random BN statistics and a unit-scale classifier make the logits O(1); the outputs are compared
after dividing by the logits' spread, so atol 1e-4 is a real check even where a family's head
keeps them small (with the default init any mismatch would hide under an absolute tolerance).
The bulk (50 random architectures at 224x224) is marked slow; the default run keeps the
references, 10 random architectures at 32x32 and 3 at 224x224.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces import (ArchSpec, MnasNetSpace, Network, build_network, reference_network,
                           reference_network_names)
from search_spaces.onnx_export import export_onnx_bytes

NUM_CLASSES = 10
SPACE = MnasNetSpace()


def _random_archs(n: int, seed: int) -> list[ArchSpec]:
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


RANDOM_50 = _random_archs(50, seed=2019)


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.in_features ** 0.5)
    return model.eval()


def _check_parity(arch: Network, input_size: int, seed: int = 0) -> None:
    import onnxruntime as ort

    model = _randomize(build_network(arch, num_classes=NUM_CLASSES), seed)
    x = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(x).numpy()
    assert expected.shape == (1, NUM_CLASSES)
    assert np.isfinite(expected).all()
    scale = float(expected.std())
    assert scale > 1e-3, "logits (nearly) constant: the comparison would mean nothing"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(export_onnx_bytes(model, input_size), options,
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got / scale, expected / scale, rtol=0, atol=1e-4)


@pytest.mark.parametrize("input_size", [224, 32])
@pytest.mark.parametrize("name", reference_network_names())
def test_reference_forward_and_onnx(name: str, input_size: int) -> None:
    _check_parity(reference_network(name), input_size)


@pytest.mark.parametrize("index", range(10))
def test_random_arch_forward_and_onnx_32(index: int) -> None:
    _check_parity(RANDOM_50[index], 32, seed=index)


@pytest.mark.parametrize("index", range(3))
def test_random_arch_forward_and_onnx_224(index: int) -> None:
    _check_parity(RANDOM_50[index], 224, seed=index)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(10, 50))
def test_random_arch_forward_and_onnx_32_slow(index: int) -> None:
    _check_parity(RANDOM_50[index], 32, seed=index)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(3, 50))
def test_random_arch_forward_and_onnx_224_slow(index: int) -> None:
    _check_parity(RANDOM_50[index], 224, seed=index)


def test_random_sample_covers_every_choice() -> None:
    """The 50 random architectures exercise every op, skip and SE choice (else the parity tests
    above would prove less than they claim)."""
    blocks = [b for a in RANDOM_50 for b in a.blocks]
    assert {b.op for b in blocks} == {"conv", "ds", "ir"}
    assert {b.skip for b in blocks} == {"identity", "pool", "none"}
    assert {b.se_ratio for b in blocks} == {0.0, 0.25}
    assert {b.kernel for b in blocks} == {3, 5}
    assert {b.expansion for b in blocks if b.op == "ir"} == {3, 6}
