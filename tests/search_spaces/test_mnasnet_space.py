"""MnasNetSpace: size, decision order, action <-> ArchSpec round trips, validation of user data,
a reshaped space for small images, and the fingerprint."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces import (ArchSpec, BlockSpec, MnasNetSpace, build_model, decode_arch,
                           layer_resolutions, parse_op, reference_arch)

SPACE = MnasNetSpace()


def _mobilenet_v2_relu() -> ArchSpec:
    """MobileNetV2's blocks with the space's ReLU instead of its published ReLU6."""
    arch = reference_arch("mobilenet_v2")
    return arch.with_(blocks=tuple(b.with_(act="relu") for b in arch.blocks), activation="relu")


def test_size_is_432_per_block_to_the_seventh() -> None:
    assert SPACE.size == 432 ** 7
    assert 2.7e18 < SPACE.size < 2.9e18  # the paper's ~2.8e18


def test_forty_two_decisions_in_order() -> None:
    decisions = SPACE.decisions
    assert len(decisions) == 42
    fields = ["op", "kernel", "se", "skip", "filters", "layers"]
    assert [d.name for d in decisions] == [f"block{b}.{f}" for b in range(1, 8) for f in fields]
    assert [d.size for d in decisions[:6]] == [4, 2, 2, 3, 3, 3]
    assert decisions[0].choices == ("conv", "dconv", "mbconv3", "mbconv6")
    assert decisions[5].choices == (-1, 0, 1)


def test_decode_applies_base_network_and_choices() -> None:
    # block 1: mbconv6, k5, se0.25, no skip, x1.25 filters, +1 layer; others all first choices.
    actions = [3, 1, 1, 2, 2, 2] + [0] * 36
    arch = SPACE.decode(actions)
    first = arch.blocks[0]
    assert first == BlockSpec("ir", 2, 5, 1, 6, 32, 24, 0.25, "none")  # round(16*1.25=20) -> 24
    second = arch.blocks[1]
    # conv, k3, no SE, pool skip, 0.75 x 24 = 18 -> 16 < 0.9*18 -> 24; 2 - 1 layers.
    assert second == BlockSpec("conv", 1, 3, 2, 1, 24, 24, 0.0, "pool")
    assert [b.stride for b in arch.blocks] == [1, 2, 2, 2, 1, 2, 1]
    assert (arch.stem_filters, arch.stem_stride, arch.head_filters) == (32, 2, 1280)


def test_mobilenet_v2_is_in_the_space() -> None:
    """Choices mbconv6/dconv, k3, no SE, identity, x1.0, +0 layers give MobileNetV2 1.0's
    blocks (with the space's ReLU: the published network's ReLU6 is not a choice)."""
    per_block = [[1, 0, 0, 1, 1, 1]] + [[3, 0, 0, 1, 1, 1]] * 6
    arch = SPACE.decode([a for block in per_block for a in block])
    assert arch == _mobilenet_v2_relu()
    with pytest.raises(ValueError, match="block 1: activation 'relu6' is not a choice"):
        SPACE.encode(reference_arch("mobilenet_v2"))
    encoded = SPACE.encode(arch)
    # encode picks the first matching choice, and some choices alias: x0.75 rounds 16 -> 16 in
    # block 1 and 18 -> 24 in block 2 (16 < 0.9 * 18), and -1 layer clamps to 1 in blocks 1 and 7.
    expected = ([1, 0, 0, 1, 0, 0] + [3, 0, 0, 1, 0, 1] + [3, 0, 0, 1, 1, 1] * 4
                + [3, 0, 0, 1, 1, 0])
    assert encoded == expected
    assert SPACE.decode(encoded) == arch


def test_random_samples_round_trip() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        actions = SPACE.sample_actions(rng)
        assert len(actions) == 42
        assert all(0 <= a < d.size for a, d in zip(actions, SPACE.decisions))
        arch = SPACE.decode(actions)
        encoded = SPACE.encode(arch)
        # Different actions can name the same network (e.g. block 1: 0.75 x 16 and 1.0 x 16 both
        # round to 16; 1 layer - 1 is clamped to 1), so the round trip is exact on architectures.
        assert SPACE.decode(encoded) == arch
        assert SPACE.encode(SPACE.decode(encoded)) == encoded


def test_sample_is_reproducible_with_seed() -> None:
    a = [SPACE.sample(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]


def test_encode_rejects_architectures_outside_the_space() -> None:
    with pytest.raises(ValueError, match="block 5: filters"):
        SPACE.encode(reference_arch("mnasnet_a1"))  # 112 is not 0.75/1/1.25 x 96 on the grid
    with pytest.raises(ValueError, match="blocks"):
        SPACE.encode(decode_arch(["r1_k3_s11_e1_i32_o16"]))
    with pytest.raises(ValueError, match="kernel"):
        SPACE.encode(_mobilenet_v2_relu().with_(blocks=(
            _mobilenet_v2_relu().blocks[0].with_(kernel=7), *_mobilenet_v2_relu().blocks[1:])))
    with pytest.raises(ValueError, match="stem or head"):
        SPACE.encode(_mobilenet_v2_relu().with_(head_filters=1024))
    with pytest.raises(ValueError, match="stem or head"):  # ReLU blocks, ReLU6 stem and head
        SPACE.encode(_mobilenet_v2_relu().with_(activation="relu6"))


def test_decode_rejects_bad_actions() -> None:
    with pytest.raises(ValueError, match="expected 42 actions"):
        SPACE.decode([0] * 41)
    with pytest.raises(ValueError, match="block1.op"):
        SPACE.decode([4] + [0] * 41)
    with pytest.raises(ValueError, match="block1.op"):
        SPACE.decode([True] + [0] * 41)


@pytest.mark.parametrize("data, key", [
    ({"kernel": [3]}, "search_space.kernel"),
    ({"kernels": [3, 4]}, "search_space.kernels"),
    ({"kernels": 3}, "search_space.kernels"),
    ({"kernels": []}, "search_space.kernels"),
    ({"kernels": [3, 3]}, "search_space.kernels"),
    ({"ops": ["mbconv6", "sepconv"]}, "search_space.ops"),
    ({"ops": ["mbconv1"]}, "search_space.ops"),
    ({"se_ratios": [0, 2]}, "search_space.se_ratios"),
    ({"skips": ["residual"]}, "search_space.skips"),
    ({"filter_multipliers": [0]}, "search_space.filter_multipliers"),
    ({"layer_deltas": [0.5]}, "search_space.layer_deltas"),
    ({"stem_stride": 0}, "search_space.stem_stride"),
    ({"input_size": "224"}, "search_space.input_size"),
    ({"dropout": "high"}, "search_space.dropout"),
    ({"base": "mobilenet"}, "search_space.base"),
    ({"base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 16}]},
     "search_space.base[0]"),
    ({"base": [{"kernel": 3, "stride": 1, "expansion": 1, "filters": 16, "layers": 1,
                "width": 2}]}, "search_space.base[0].width"),
    ({"base": [{"kernel": 3, "stride": 3, "expansion": 1, "filters": 16, "layers": 1}]},
     "search_space.base[0].stride"),
])
def test_from_dict_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ValueError) as info:
        MnasNetSpace.from_dict(data)
    assert str(info.value).startswith(key)


def test_from_dict_round_trips_and_defaults() -> None:
    assert MnasNetSpace.from_dict(None) == SPACE == MnasNetSpace.from_dict({})
    assert MnasNetSpace.from_dict(SPACE.to_dict()) == SPACE
    assert parse_op("mbconv4") == ("ir", 4) and parse_op("dconv") == ("ds", 1)


SMALL = {
    "stem_stride": 1, "stem_filters": 16, "input_size": 32, "num_classes": 10,
    "head_filters": 256, "kernels": [3, 5], "ops": ["dconv", "mbconv3", "mbconv6"],
    "base": [
        {"kernel": 3, "stride": 1, "expansion": 1, "filters": 16, "layers": 1},
        {"kernel": 3, "stride": 2, "expansion": 6, "filters": 24, "layers": 2},
        {"kernel": 3, "stride": 2, "expansion": 6, "filters": 40, "layers": 2},
        {"kernel": 3, "stride": 2, "expansion": 6, "filters": 80, "layers": 2},
    ],
}


def test_reshaped_space_for_small_images_builds_and_runs() -> None:
    space = MnasNetSpace.from_dict(SMALL)
    assert len(space.decisions) == 24
    assert space.size == (3 * 2 * 2 * 3 * 3 * 3) ** 4
    rng = np.random.default_rng(0)
    for _ in range(3):
        arch = space.sample(rng)
        assert arch.stem_stride == 1 and arch.stem_filters == 16 and arch.total_stride == 8
        assert space.decode(space.encode(arch)) == arch
        resolutions = layer_resolutions(arch, space.input_size)
        last_layer, last_input = resolutions[-1]
        assert resolutions[0][1] == 32 and -(-last_input // last_layer.stride) == 4
        model = build_model(arch, num_classes=space.num_classes).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_fingerprint_changes_when_the_space_changes() -> None:
    base = MnasNetSpace.from_dict(SMALL)
    assert base.fingerprint == MnasNetSpace.from_dict(dict(SMALL)).fingerprint
    assert len(base.fingerprint) == 16
    variants = [dict(SMALL, kernels=[3]), dict(SMALL, stem_stride=2), dict(SMALL, input_size=64),
                dict(SMALL, base=SMALL["base"][:3]), dict(SMALL, width_divisor=4)]
    prints = {MnasNetSpace.from_dict(v).fingerprint for v in variants}
    assert base.fingerprint not in prints and len(prints) == len(variants)
    assert SPACE.fingerprint != base.fingerprint
