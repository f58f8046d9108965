"""Published parameter and multiply-add figures the builder must hit exactly."""
import pytest

from search_spaces import (build_model, count_macs, count_params, encode_arch, reference_arch,
                           reference_names, round_filters)
from search_spaces.reference import REFERENCE_STRINGS


@pytest.mark.parametrize("name, params", [("mnasnet_b1", 4_383_312), ("mobilenet_v2", 3_504_872)])
def test_published_parameter_counts(name: str, params: int) -> None:
    assert count_params(build_model(reference_arch(name), num_classes=1000)) == params


def test_mnasnet_a1_matches_paper() -> None:
    model = build_model(reference_arch("mnasnet_a1"), num_classes=1000)
    assert round(count_params(model) / 1e6, 1) == 3.9
    assert round(count_params(model) / 1e4) == 389  # timm's semnasnet_100: 3.89M
    assert round(count_macs(model, 224) / 1e6) == 312


@pytest.mark.parametrize("name", sorted(REFERENCE_STRINGS))
def test_official_strings_round_trip(name: str) -> None:
    assert encode_arch(reference_arch(name)) == list(REFERENCE_STRINGS[name])


# -- width multipliers ----------------------------------------------------------------------------
# MobileNetV2 widths derived by hand with torchvision's / Keras' rule: scale, round to the nearest
# multiple of 8 (at least 8), add 8 if that lost more than 10%; head = 1280 x max(1, width).
# e.g. x0.35: 32*0.35 = 11.2 -> 8 < 10.08 -> 16; 24*0.35 = 8.4 -> 8; 96*0.35 = 33.6 -> 32.
#      x0.75: 24*0.75 = 18 -> 16 < 16.2 -> 24.   x1.4: 64*1.4 = 89.6 -> 88; 96*1.4 = 134.4 -> 136.
MOBILENET_V2_WIDTHS = {
    # width: (stem, [block outputs], head)
    0.35: (16, [8, 8, 16, 24, 32, 56, 112], 1280),
    0.5: (16, [8, 16, 16, 32, 48, 80, 160], 1280),
    0.75: (24, [16, 24, 24, 48, 72, 120, 240], 1280),
    1.0: (32, [16, 24, 32, 64, 96, 160, 320], 1280),
    1.4: (48, [24, 32, 48, 88, 136, 224, 448], 1792),
}
# Multiply-adds (M) of the TF-slim MobileNetV2 table (tensorflow/models, research/slim/nets/
# mobilenet): an independent check that the widths above give the published networks.
MOBILENET_V2_MMACS = {0.35: 59, 0.5: 97, 0.75: 209, 1.0: 300, 1.4: 582}


@pytest.mark.parametrize("width", sorted(MOBILENET_V2_WIDTHS))
def test_mobilenet_v2_width_multipliers(width: float) -> None:
    stem, outs, head = MOBILENET_V2_WIDTHS[width]
    arch = reference_arch("mobilenet_v2", width)
    assert arch.stem_filters == stem
    assert [b.out_filters for b in arch.blocks] == outs
    assert [b.in_filters for b in arch.blocks] == [stem] + outs[:-1]
    assert arch.head_filters == head
    macs = count_macs(build_model(arch, num_classes=1000), 224)
    assert abs(macs / 1e6 - MOBILENET_V2_MMACS[width]) < 1.0


# torchvision's MNASNet (= mnasnet_b1) documents these parameter counts; its head stays 1280 at
# every width, as in the official MnasNet code.
@pytest.mark.parametrize("width, params", [(0.5, 2_218_512), (0.75, 3_170_208), (1.3, 6_282_256)])
def test_mnasnet_b1_width_multipliers_match_torchvision(width: float, params: int) -> None:
    arch = reference_arch("mnasnet_b1", width)
    assert arch.head_filters == 1280
    assert count_params(build_model(arch, num_classes=1000)) == params


# Official MnasNet README (tensorflow/tpu models/official/mnasnet): A1 parameters in millions.
@pytest.mark.parametrize("width, millions", [(0.35, 1.7), (0.5, 2.1), (0.75, 2.9), (1.4, 6.1)])
def test_mnasnet_a1_width_multipliers_match_official_readme(width: float, millions: float) -> None:
    model = build_model(reference_arch("mnasnet_a1", width), num_classes=1000)
    assert round(count_params(model) / 1e6, 1) == millions


def test_round_filters_rule() -> None:
    assert [round_filters(f, 0.35) for f in (16, 24, 32, 96)] == [8, 8, 16, 32]
    assert round_filters(18) == 24 and round_filters(20) == 24 and round_filters(12) == 16
    assert round_filters(3) == 8  # never below the divisor
    assert round_filters(100, 1.0, divisor=4) == 100


@pytest.mark.parametrize("name, width, message", [
    ("mnasnet_c1", 1.0, "unknown reference architecture 'mnasnet_c1'"),
    ("mnasnet_a1", 0, "width multiplier"),
    ("mnasnet_a1", -1.0, "width multiplier"),
    ("mnasnet_a1", float("inf"), "width multiplier"),
    ("mnasnet_a1", float("nan"), "width multiplier"),
])
def test_reference_arch_rejects_bad_input(name: str, width: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reference_arch(name, width)


def test_reference_names_and_stem_stride() -> None:
    assert reference_names() == ["efficientnet_b0", "mnasnet_a1", "mnasnet_b1", "mobilenet_v2"]
    arch = reference_arch("mnasnet_a1", stem_stride=1)
    assert arch.stem_stride == 1 and arch.total_stride == 16


def test_mobilenet_v2_uses_its_published_relu6_and_mnasnet_relu() -> None:
    from torch import nn
    mv2 = build_model(reference_arch("mobilenet_v2", 0.5))
    acts = {type(m) for m in mv2.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))}
    assert acts == {nn.ReLU6}  # as published (and in timm, torchvision)
    a1 = build_model(reference_arch("mnasnet_a1"))
    assert {type(m) for m in a1.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))} == {nn.ReLU}
