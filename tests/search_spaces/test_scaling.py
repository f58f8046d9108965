"""Compound scaling: phi = 0 is the identity, widths and depths follow the official rounding, and
EfficientNet-B0 scaled by the published coefficients gives torchvision's B1-B4 exactly."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_spaces import MnasNetSpace, build_model, count_params, reference_arch, round_filters
from search_spaces.scaling import (Compound, compound_scale, constrained_grid, round_repeats,
                                   scale_depth_width, scale_resolution)

B0 = reference_arch("efficientnet_b0")


@pytest.mark.parametrize("name", ["efficientnet_b0", "mnasnet_a1", "mobilenet_v2"])
def test_phi_zero_is_the_identity(name: str) -> None:
    arch = reference_arch(name)
    assert compound_scale(arch, 224, Compound(0)) == (arch, 224)


@settings(max_examples=30, deadline=None)
@given(phi=st.floats(0, 3), alpha=st.floats(1, 1.5), beta=st.floats(1, 1.5),
       gamma=st.floats(1, 1.5), seed=st.integers(0, 10_000))
def test_widths_and_depths_follow_the_rule(phi: float, alpha: float, beta: float, gamma: float,
                                           seed: int) -> None:
    import numpy as np
    arch = MnasNetSpace().sample(np.random.default_rng(seed))
    c = Compound(phi, alpha, beta, gamma)
    scaled, size = compound_scale(arch, 32, c)
    assert size == round(32 * gamma ** phi)
    assert scaled.stem_filters == round_filters(arch.stem_filters, beta ** phi)
    assert scaled.head_filters == round_filters(arch.head_filters, beta ** phi)
    for old, new in zip(arch.blocks, scaled.blocks):
        assert new.repeats == math.ceil(old.repeats * alpha ** phi) >= old.repeats
        assert new.out_filters == round_filters(old.out_filters, beta ** phi)
        assert new.out_filters % 8 == 0 and new.out_filters >= 0.9 * old.out_filters * beta ** phi
        assert (new.kernel, new.stride, new.expansion, new.se_ratio, new.skip, new.act) == \
            (old.kernel, old.stride, old.expansion, old.se_ratio, old.skip, old.act)


def test_round_filters_and_repeats_examples() -> None:
    assert round_filters(40, 1.1) == 48   # 44 -> 48 (int(44 + 4) // 8 * 8)
    assert round_filters(80, 1.1) == 88
    assert round_filters(112, 1.1) == 120  # 123.2 -> 120 (within 10%)
    assert round_filters(16, 0.25) == 8    # never below the divisor
    assert round_repeats(3, 1.2) == 4 and round_repeats(1, 1.2) == 2 and round_repeats(4, 1.0) == 4


#: torchvision's efficientnet_b1..b4 (width, depth) and parameter counts at 1000 classes.
TORCHVISION = [(1.0, 1.1, 7_794_184), (1.1, 1.2, 9_109_994), (1.2, 1.4, 12_233_232),
               (1.4, 1.8, 19_341_616)]


@pytest.mark.parametrize("width,depth,params", TORCHVISION)
def test_efficientnet_b0_scales_to_published_b1_to_b4(width: float, depth: float,
                                                     params: int) -> None:
    assert count_params(build_model(scale_depth_width(B0, depth, width))) == params


def test_phi_one_with_the_paper_coefficients_is_b2() -> None:
    c = Compound(1)
    assert (c.depth, c.width) == (1.2, 1.1) and c.flops_factor == pytest.approx(1.9203, abs=1e-4)
    arch, size = compound_scale(B0, 224, c)
    assert size == 258 and count_params(build_model(arch)) == 9_109_994


def test_constrained_grid() -> None:
    grid = constrained_grid(0.05)
    assert all(abs(c.flops_factor - 2) <= 0.1 and c.phi == 1 for c in grid)
    assert any((c.alpha, c.beta, c.gamma) == (1.2, 1.1, 1.15) for c in grid)  # the paper's
    assert len(constrained_grid(0.2)) < len(grid)


@pytest.mark.parametrize("kwargs,message", [
    (dict(phi=float("inf")), "phi must be a finite number"),
    (dict(phi=1, alpha=0.9), "alpha must be >= 1"),
    (dict(phi=1, gamma=float("nan")), "gamma must be a finite number > 0"),
])
def test_bad_coefficients(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Compound(**kwargs)
    with pytest.raises(ValueError, match="resolution"):
        scale_resolution(32, 0)
