"""The supernet's slicing: a child inside the supernet computes what the extracted builder model
computes, and uses exactly the parameters the builder gives that architecture."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces import build_model, count_params
from search_spaces.space import MnasNetSpace
from search_spaces.supernet import SuperNet

#: Small but with every kind of choice: all four ops, two kernels, SE, all skips, 3 widths, 3
#: depths, and blocks that stride and change width (pooling-skip projections).
SPACE = MnasNetSpace.from_dict(dict(
    input_size=16, num_classes=5, stem_filters=8, stem_stride=1, head_filters=32, dropout=0.1,
    width_divisor=4, kernels=[3, 5],
    base=[dict(kernel=3, stride=1, expansion=1, filters=8, layers=1),
          dict(kernel=3, stride=2, expansion=6, filters=12, layers=2),
          dict(kernel=3, stride=1, expansion=6, filters=16, layers=1)]))


def _archs(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("transform", ["crop", "ofa"])
def test_child_in_supernet_equals_extracted_model(transform: str) -> None:
    torch.manual_seed(0)
    net = SuperNet(SPACE, kernel_transform=transform)
    if transform == "ofa":  # make the transforms do something
        with torch.no_grad():
            for p in net.parameters():
                if p.ndim == 2 and p.shape[0] == p.shape[1] == 9:
                    p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(3, 3, 16, 16)
    for arch in _archs(12):
        model = net.extract(arch)
        for training in (True, False):
            net.train(training)
            model.train(training)
            torch.manual_seed(1)
            a = net.view(arch)(x)
            torch.manual_seed(1)
            b = model(x)
            assert torch.allclose(a, b, atol=1e-5), (transform, training, (a - b).abs().max())


def test_active_parameters_follow_every_decision_as_the_builder_counts() -> None:
    net = SuperNet(SPACE)
    base = SPACE.encode(_archs(1, seed=3)[0])
    seen_changes = 0
    for i, decision in enumerate(SPACE.decisions):
        counts = set()
        for choice in range(decision.size):
            actions = list(base)
            actions[i] = choice
            arch = SPACE.decode(actions)
            expected = count_params(build_model(arch, SPACE.num_classes))
            assert net.active_params(arch) == expected, (decision.name, choice)
            counts.add(expected)
        seen_changes += len(counts) > 1
    assert seen_changes >= len(SPACE.decisions) // 2  # most decisions change the count


def test_largest_child_has_the_builders_parameters_and_fits_in_the_supernet() -> None:
    net = SuperNet(SPACE)
    largest = SPACE.decode(net.extreme_actions(True))
    smallest = SPACE.decode(net.extreme_actions(False))
    big = count_params(build_model(largest, SPACE.num_classes))
    assert net.active_params(largest) == big
    assert count_params(build_model(smallest, SPACE.num_classes)) < big
    assert big < sum(p.numel() for p in net.parameters())
    assert all(b.repeats == max(1, base.layers + 1) for b, base in zip(largest.blocks, SPACE.base))


def test_kernel_three_is_the_centre_of_the_five_with_crop() -> None:
    net = SuperNet(SPACE)
    bank = net.blocks[0][0].ds["dw"]
    assert torch.equal(bank.kernel(3, 8, 1), bank.weight[:8, :1, 1:4, 1:4])
    with pytest.raises(ValueError, match="kernel 7"):
        bank.kernel(7, 8, 1)


def test_a_child_of_another_space_is_refused() -> None:
    other = MnasNetSpace.from_dict(dict(SPACE.to_dict(), stem_filters=16))
    arch = other.sample(np.random.default_rng(0))
    net = SuperNet(SPACE)
    with pytest.raises(ValueError):
        net.view(arch)
    with pytest.raises(ValueError, match="no child selected"):
        net(torch.zeros(1, 3, 16, 16))


def test_unknown_kernel_transform_is_one_line() -> None:
    with pytest.raises(ValueError, match="kernel_transform"):
        SuperNet(SPACE, kernel_transform="bilinear")
