"""OfaMobileNetV3Space: decisions, lossless spec <-> actions <-> strings, the h-swish token, the
built PyTorch model, narrowed choices and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from search_spaces import (OfaArch, OfaMobileNetV3Space, build_model, build_ofa_model,
                           create_space, decode_arch, decode_block, encode_block, space_to_dict)
from search_spaces.ofa import STAGE_WIDTHS

SPACE = OfaMobileNetV3Space()
#: OFA's tutorial network (the data README's check).
TUTORIAL = OfaArch(192, (2, 2, 3, 4, 3), (5, 3, 5, 3, 7, 7, 3, 5, 5, 7, 3, 3, 3, 5),
                   (3, 3, 4, 4, 6, 3, 4, 4, 4, 4, 3, 6, 6, 6))


def test_decisions_and_size():
    names = [d.name for d in SPACE.decisions]
    assert len(names) == 5 * (1 + 2 * 4) + 1 == 46
    assert names[:3] == ["stage1.depth", "stage1.layer1.kernel", "stage1.layer1.expand"]
    assert names[-1] == "resolution" and SPACE.decisions[-1].choices == (160, 176, 192, 208, 224)
    per_stage = 9 ** 2 + 9 ** 3 + 9 ** 4
    assert SPACE.size == per_stage ** 5 * 5  # distinct networks (~1e20; OFA quotes ~2e19 x res)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_actions_spec_and_strings_round_trip(data):
    actions = [data.draw(st.integers(0, d.size - 1)) for d in SPACE.decisions]
    arch = SPACE.decode(actions)
    assert SPACE.decode(SPACE.encode(arch)) == arch
    assert OfaArch.from_strings(arch.to_strings()) == arch
    assert SPACE.from_strings(SPACE.to_strings(arch)) == arch
    assert len(arch.kernels) == sum(arch.depths)


def test_tutorial_network_as_block_strings():
    strings = TUTORIAL.to_strings()
    assert strings[0] == "res192"
    assert strings[1] == "r1_k3_s11_e1_i24_o24"  # the fixed first layer
    assert strings[2] == "r1_k5_s22_e3_i24_o32"
    assert strings[4] == "r1_k5_s22_e4_i32_o48_se0.25"  # stage 2: SE, ReLU
    assert strings[6] == "r1_k7_s22_e6_i48_o96_hs"  # stage 3: h-swish
    assert strings[-1] == "r1_k5_s11_e6_i192_o192_se0.25_hs"
    spec = TUTORIAL.to_arch_spec()
    assert decode_arch(strings[1:], stem_filters=24, head_filters=1152, dropout=0.1) == spec
    assert [b.out_filters for b in spec.blocks[1:]] == [32, 32, 48, 48, 96, 96, 96, 136, 136,
                                                       136, 136, 192, 192, 192]


def test_hs_token_round_trips_and_builds_hardswish():
    block = decode_block("r1_k3_s11_e4_i96_o96_hs")
    assert block.act == "hswish" and encode_block(block) == "r1_k3_s11_e4_i96_o96_hs"
    assert decode_block("r1_k3_s11_e4_i96_o96").act == "relu"
    with pytest.raises(ValueError, match="flag 'hs' takes no value"):
        decode_block("r1_k3_s11_e4_i96_o96_hs1")


def test_built_model_runs_with_ofa_head():
    torch.manual_seed(0)
    model = build_ofa_model(TUTORIAL, num_classes=10)
    assert model(torch.zeros(1, 3, 192, 192)).shape == (1, 10)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Hardswish", "SqueezeExcite", "InvertedResidual"} <= kinds
    plain = build_model(TUTORIAL.to_arch_spec(), num_classes=10)  # the common builder alone
    assert plain(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


def test_narrowed_space_and_bad_settings():
    small = create_space({"name": "ofa_mobilenetv3", "kernels": [3], "expands": [3],
                          "depths": [2], "resolutions": [160]})
    assert small.size == 1
    assert space_to_dict(small)["name"] == "ofa_mobilenetv3"
    with pytest.raises(ValueError, match=r"search_space.kernels: 9 is not one of \[3, 5, 7\]"):
        OfaMobileNetV3Space(kernels=(3, 9))
    with pytest.raises(ValueError, match="search_space.width: unknown key"):
        create_space({"name": "ofa_mobilenetv3", "width": 1.0})
    with pytest.raises(ValueError, match="depth 4 is not a choice"):
        OfaMobileNetV3Space(depths=(2, 3)).encode(TUTORIAL)


@pytest.mark.parametrize("strings, fragment", [
    (["r192"], "should be res<R>"),
    (["res192", "r1_k3_s11_e1_i24_o24", "r1_k5_s22_e3_i24_o40"], "not a network of the OFA"),
    ("res192", "expected ['res<R>'"),
])
def test_bad_strings(strings, fragment):
    with pytest.raises(ValueError) as err:
        OfaArch.from_strings(strings)
    assert fragment in str(err.value)


def test_spec_checks_its_shape():
    with pytest.raises(ValueError, match="14 layers need 14 kernels"):
        OfaArch(192, (2, 2, 3, 4, 3), (3,) * 13, (3,) * 14)
    with pytest.raises(ValueError, match="5 depths"):
        OfaArch(192, (2, 2), (3,) * 4, (3,) * 4)


def test_sample_stays_in_space():
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = SPACE.sample(rng)
        assert arch.resolution in SPACE.resolutions
        assert len(arch.depths) == len(STAGE_WIDTHS)
