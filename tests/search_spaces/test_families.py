"""Reference families: exact published parameter counts at 1000 classes, paper multiply-adds,
width rules, names, and the activation token that puts EfficientNet-B0 in the block grammar."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces import (FamilyModel, build_network, count_macs, count_params, decode_arch,
                           decode_block, encode_arch, encode_block, reference_network,
                           reference_network_names)

#: (name, width, parameters at 1000 classes, where the figure comes from).
PUBLISHED = [
    ("shufflenet_v2", 0.5, 1_366_792, "torchvision shufflenet_v2_x0_5"),
    ("shufflenet_v2", 1.0, 2_278_604, "torchvision shufflenet_v2_x1_0"),
    ("shufflenet_v2", 1.5, 3_503_624, "torchvision shufflenet_v2_x1_5"),
    ("shufflenet_v2", 2.0, 7_393_996, "torchvision shufflenet_v2_x2_0"),
    ("squeezenet1_1", 1.0, 1_235_496, "torchvision squeezenet1_1"),
    ("efficientnet_b0", 1.0, 5_288_548, "torchvision efficientnet_b0"),
    # Keras applications MobileNet (alpha=1.0): 4,253,864 total of which 21,888 are BN moving
    # statistics (buffers here), 4,231,976 trainable; TF-slim mobilenet_v1 lists 4,231,976 too.
    ("mobilenet_v1", 1.0, 4_231_976, "Keras MobileNet trainable params / TF-slim mobilenet_v1"),
    ("mobilenet_v1", 0.75, 2_585_560, "Keras MobileNet alpha=0.75 trainable params"),
    ("mobilenet_v1", 0.5, 1_331_592, "Keras MobileNet alpha=0.5 trainable params"),
    ("mobilenet_v1", 0.25, 470_072, "Keras MobileNet alpha=0.25 trainable params"),
    # huawei-noah's reference ghostnet.py (width 1.0); the paper's Table 7 rounds it to 5.2M.
    ("ghostnet", 1.0, 5_182_508, "huawei-noah ghostnet.py, paper Table 7: 5.2M"),
]


@pytest.mark.parametrize("name,width,params,source", PUBLISHED)
def test_published_parameter_counts(name: str, width: float, params: int, source: str) -> None:
    assert count_params(build_network(reference_network(name, width))) == params, source


#: Multiply-adds at 224x224 as the papers state them (millions), checked to 1%.
PAPER_MACS = [("mobilenet_v1", 1.0, 569), ("mobilenet_v1", 0.5, 149), ("mobilenet_v1", 0.25, 41),
              ("shufflenet_v2", 1.0, 146), ("shufflenet_v2", 2.0, 591), ("ghostnet", 1.0, 141),
              ("efficientnet_b0", 1.0, 390)]


@pytest.mark.parametrize("name,width,macs", PAPER_MACS)
def test_paper_multiply_adds(name: str, width: float, macs: int) -> None:
    got = count_macs(build_network(reference_network(name, width)), 224) / 1e6
    assert got == pytest.approx(macs, rel=0.015)


@pytest.mark.parametrize("name", reference_network_names())
def test_every_reference_runs_at_32_with_stem_stride_1(name: str) -> None:
    model = build_network(reference_network(name, stem_stride=1), num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name,width,message", [
    ("shufflenet_v2", 0.75, "width must be one of 0.5, 1, 1.5, 2"),
    ("squeezenet1_1", 0.5, "width must be one of 1"),
    ("mobilenet_v1", 0.0, "finite number > 0"),
    ("ghostnet", float("nan"), "finite number > 0"),
    ("nope", 1.0, "unknown reference architecture 'nope'"),
])
def test_bad_widths_and_names(name: str, width: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reference_network(name, width)


def test_family_model_label_and_validation() -> None:
    assert FamilyModel("shufflenet_v2", 0.5).label == "shufflenet_v2@0.5"
    assert FamilyModel("ghostnet").label == "ghostnet"
    with pytest.raises(ValueError, match="stem_stride"):
        FamilyModel("ghostnet", stem_stride=3)
    with pytest.raises(ValueError, match="num_classes"):
        FamilyModel("ghostnet").build(num_classes=0)


def test_mobilenet_v1_widths_follow_depth_multiplier() -> None:
    convs = [m for m in build_network(reference_network("mobilenet_v1", 0.75)).modules()
             if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs[:3]] == [24, 24, 48]  # int(32*.75), dw, int(64*.75)
    assert convs[-1].out_channels == 768


def test_swish_token_round_trips_and_builds_silu() -> None:
    text = "r2_k5_s22_e6_i24_o40_se0.25_swish"
    block = decode_block(text)
    assert block.act == "swish" and encode_block(block) == text
    assert decode_block("swish_r2_k5_s22_e6_i24_o40").act == "swish"  # order does not matter
    assert decode_block("r2_k5_s22_e6_i24_o40").act == "relu"
    arch = reference_network("efficientnet_b0")
    assert arch.activation == "swish"
    assert decode_arch(encode_arch(arch)) == arch
    assert decode_arch(encode_arch(arch, format="timm"), format="timm") == arch
    assert encode_arch(arch, format="timm")[0].endswith("_nsw")
    model = build_network(arch)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert any(isinstance(m, nn.SiLU) for m in model.modules())


def test_mixed_activations_keep_relu_stem_unless_told() -> None:
    arch = decode_arch(["r1_k3_s11_e1_i32_o16", "r1_k3_s22_e6_i16_o24_swish"])
    assert arch.activation == "relu" and arch.blocks[1].act == "swish"
    assert decode_arch(["r1_k3_s11_e1_i32_o16"], activation="swish").activation == "swish"


@pytest.mark.parametrize("text,message", [
    ("r1_k3_s11_e1_i32_o16_swish1", "takes no value"),
    ("r1_k3_s11_e1_i32_o16_swish_swish", "given twice"),
    ("r1_k3_s11_e1_i32_o16_swish_relu", "one activation token"),
    ("r1_k3_s11_e1_i32_o16_gelu", "unknown token"),
])
def test_bad_activation_tokens(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_block(text)
