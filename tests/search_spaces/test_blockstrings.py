"""Block-string codec: official strings round-trip exactly, timm form, our `conv`/`poolskip`
tokens, and one clear ValueError (naming the string and the token) for every kind of bad input."""
from __future__ import annotations

import dataclasses

import pytest

from search_spaces import (ArchSpec, BlockSpec, decode_arch, decode_block, encode_arch,
                           encode_block, reference_arch)
from search_spaces.blockstrings import encode_timm_block
from search_spaces.reference import REFERENCE_STRINGS

# Copied by hand from the reference doc (official mnasnet_models.py), not from our module.
MNASNET_A1 = ["r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24", "r3_k5_s22_e3_i24_o40_se0.25",
              "r4_k3_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o112_se0.25",
              "r3_k5_s22_e6_i112_o160_se0.25", "r1_k3_s11_e6_i160_o320"]
MNASNET_B1 = ["r1_k3_s11_e1_i32_o16_noskip", "r3_k3_s22_e3_i16_o24", "r3_k5_s22_e3_i24_o40",
              "r3_k5_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o96", "r4_k5_s22_e6_i96_o192",
              "r1_k3_s11_e6_i192_o320_noskip"]
# timm's semnasnet_100 arch_def (timm/models/efficientnet.py, _gen_mnasnet_a1).
TIMM_A1 = ["ds_r1_k3_s1_e1_c16_noskip", "ir_r2_k3_s2_e6_c24", "ir_r3_k5_s2_e3_c40_se0.25",
           "ir_r4_k3_s2_e6_c80", "ir_r2_k3_s1_e6_c112_se0.25", "ir_r3_k5_s2_e6_c160_se0.25",
           "ir_r1_k3_s1_e6_c320"]


@pytest.mark.parametrize("strings", [MNASNET_A1, MNASNET_B1], ids=["a1", "b1"])
def test_official_strings_decode_and_encode_identically(strings: list[str]) -> None:
    arch = decode_arch(strings)
    assert encode_arch(arch) == strings
    for text in strings:
        assert encode_block(decode_block(text)) == text


def test_reference_table_matches_the_published_strings() -> None:
    assert list(REFERENCE_STRINGS["mnasnet_a1"]) == MNASNET_A1
    assert list(REFERENCE_STRINGS["mnasnet_b1"]) == MNASNET_B1


def test_official_a1_decodes_to_the_published_blocks() -> None:
    arch = decode_arch(MNASNET_A1)
    first, third = arch.blocks[0], arch.blocks[2]
    assert first == BlockSpec("ds", 1, 3, 1, 1, 32, 16, 0.0, "none")
    assert third == BlockSpec("ir", 3, 5, 2, 3, 24, 40, 0.25, "identity")
    assert (arch.stem_filters, arch.stem_stride, arch.head_filters, arch.dropout) == (
        32, 2, 1280, 0.2)


def test_token_order_does_not_matter_when_parsing() -> None:
    assert decode_block("o24_i16_e6_s22_k3_r2") == decode_block("r2_k3_s22_e6_i16_o24")
    assert decode_block("se0.25_r3_k5_s22_e3_i24_o40") == decode_block(MNASNET_A1[2])


def test_timm_form_round_trips() -> None:
    a1 = reference_arch("mnasnet_a1")
    assert encode_arch(a1, format="timm") == TIMM_A1
    assert decode_arch(TIMM_A1, format="timm") == a1
    # timm writes mnasnet_b1's first block without e1; it is the same block.
    b1 = reference_arch("mnasnet_b1")
    timm_b1 = ["ds_r1_k3_s1_c16_noskip"] + encode_arch(b1, format="timm")[1:]
    assert decode_arch(timm_b1, format="timm") == b1


def test_timm_regular_conv_uses_cn_prefix() -> None:
    arch = decode_arch(["cn_r1_k3_s1_c16", "ir_r2_k5_s2_e3_c24_se0.25"], format="timm")
    assert arch.blocks[0] == BlockSpec("conv", 1, 3, 1, 1, 32, 16, 0.0, "none")
    assert encode_arch(arch, format="timm") == ["cn_r1_k3_s1_c16",
                                                "ir_r2_k5_s2_e3_c24_se0.25"]
    assert decode_arch(encode_arch(arch), format="tf") == arch


@pytest.mark.parametrize("text, op, skip", [
    ("r1_k3_s11_e1_i32_o16_conv", "conv", "identity"),
    ("r2_k5_s22_e1_i32_o24_poolskip_conv", "conv", "pool"),
    ("r2_k3_s22_e6_i32_o24_poolskip", "ir", "pool"),
    ("r1_k3_s11_e1_i32_o16_se0.25_poolskip", "ds", "pool"),
    ("r1_k3_s11_e1_i32_o32_se0.25_noskip_conv", "conv", "none"),
])
def test_our_tokens_round_trip(text: str, op: str, skip: str) -> None:
    block = decode_block(text)
    assert (block.op, block.skip) == (op, skip)
    assert encode_block(block) == text


def test_stem_width_defaults_to_first_block_input() -> None:
    arch = decode_arch(["r1_k3_s11_e1_i24_o16", "r1_k3_s22_e6_i16_o24"])
    assert arch.stem_filters == 24
    assert decode_arch(["r1_k3_s11_e1_i24_o16"], stem_filters=24, stem_stride=1).stem_stride == 1
    # TF's code sizes nothing of an e1 block without SE from `i`: the stem's width wins
    assert decode_arch(["r1_k3_s11_e1_i24_o16"], stem_filters=32).blocks[0].in_filters == 32
    with pytest.raises(ValueError, match="stem gives 32 filters but the block says i24"):
        decode_arch(["r1_k3_s11_e6_i24_o16"], stem_filters=32)


def test_specs_are_frozen() -> None:
    block = decode_block(MNASNET_A1[1])
    arch = decode_arch(MNASNET_A1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.kernel = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.stem_filters = 16  # type: ignore[misc]
    layer = next(block.layers())
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.stride = 1  # type: ignore[misc]
    assert hash(arch) == hash(decode_arch(MNASNET_A1))


def test_block_layers_first_takes_stride_and_width() -> None:
    layers = list(decode_block("r3_k5_s22_e6_i40_o80").layers())
    assert [(la.stride, la.in_filters, la.out_filters) for la in layers] == [
        (2, 40, 80), (1, 80, 80), (1, 80, 80)]


# -- bad strings: ValueError naming the string and the token ------------------------------------
@pytest.mark.parametrize("text, token", [
    ("r1_k3_s11_e1_i32_o16_bogus", "bogus"),        # unknown token
    ("r1_k3_s11_e1_i32_o16_x7", "x7"),              # unknown key with a value
    ("r1_s11_e1_i32_o16", "k"),                     # missing kernel
    ("r1_k_s11_e1_i32_o16", "k"),                   # kernel without a value
    ("r1_k3_s2_e1_i32_o16", "s2"),                  # stride must be s11 / s22
    ("r1_k3_s12_e1_i32_o16", "s12"),
    ("r1_k3_s11_e0_i32_o16", "e0"),                 # expansion 0
    ("r1_k3_s11_e1_i-16_o16", "i-16"),              # negative filters
    ("r1_k3_s11_e1_i32_o16_se1.5", "se1.5"),        # SE ratio above 1
    ("r1_k3_s11_e1_i32_o16_se", "se"),              # SE without a value
    ("r1_k4_s11_e1_i32_o16", "k4"),                 # even kernel
    ("r1_k3_s11_e6_i32_o16_conv", "e6"),            # conv needs e1
    ("r1_k3_s11_e1_i32_o16_noskip_poolskip", "poolskip"),
    ("r1_k3_s11_e1_i32_o16_noskip1", "noskip1"),    # flags take no value
    ("r1_r2_k3_s11_e1_i32_o16", "r2"),              # repeated key
    ("r0_k3_s11_e1_i32_o16", "r0"),
    ("r1__k3_s11_e1_i32_o16", ""),                  # empty token
])
def test_bad_block_string_names_string_and_token(text: str, token: str) -> None:
    with pytest.raises(ValueError) as info:
        decode_arch([text])
    message = str(info.value)
    assert repr(text) in message
    assert f"token {token!r}" in message
    assert "\n" not in message


@pytest.mark.parametrize("strings, token", [
    (["ir_r1_k3_s22_e6_c24"], "s22"),               # timm strides are s1 / s2
    (["xx_r1_k3_s2_e6_c24"], "xx"),                 # unknown op prefix
    (["ir_r1_k3_s2_c24"], "e"),                     # ir needs an expansion
    (["ds_r1_k3_s1_e6_c16"], "e6"),                 # ds needs e1
    (["ir_r1_k3_s2_e6_o24"], "o24"),                # timm uses c, not o
])
def test_bad_timm_string_names_string_and_token(strings: list[str], token: str) -> None:
    with pytest.raises(ValueError) as info:
        decode_arch(strings, format="timm")
    assert repr(strings[0]) in str(info.value)
    assert f"token {token!r}" in str(info.value)


def test_empty_list_and_wrong_types_raise_value_error() -> None:
    with pytest.raises(ValueError, match="empty list"):
        decode_arch([])
    with pytest.raises(ValueError, match="list of strings"):
        decode_arch("r1_k3_s11_e1_i32_o16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        decode_arch([""])
    with pytest.raises(ValueError, match="expected text"):
        decode_arch([12])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown block-string format 'keras'"):
        decode_arch(MNASNET_A1, format="keras")
    with pytest.raises(ValueError, match="unknown block-string format"):
        encode_arch(reference_arch("mnasnet_a1"), format="keras")


def test_width_chain_mismatch_names_the_block() -> None:
    strings = ["r1_k3_s11_e1_i32_o16", "r2_k3_s22_e6_i24_o24"]
    with pytest.raises(ValueError) as info:
        decode_arch(strings)
    message = str(info.value)
    assert "r2_k3_s22_e6_i24_o24" in message
    assert "block 2 takes 24 input filters but the previous layer gives 16" in message


@pytest.mark.parametrize("changes", [
    dict(op="sep"), dict(skip="residual"), dict(repeats=0), dict(kernel=4), dict(stride=3),
    dict(expansion=0), dict(in_filters=-16), dict(out_filters=True), dict(se_ratio=1.5),
    dict(se_ratio=float("nan")), dict(op="ds", expansion=6), dict(op="ir", expansion=1),
    dict(op="conv", expansion=3),
])
def test_block_spec_validation(changes: dict) -> None:
    fields = dict(op="ir", repeats=1, kernel=3, stride=1, expansion=6, in_filters=16,
                  out_filters=16, se_ratio=0.0, skip="identity")
    fields.update(changes)
    with pytest.raises(ValueError, match="invalid block"):
        BlockSpec(**fields)


@pytest.mark.parametrize("changes, message", [
    (dict(blocks=()), "at least one block"),
    (dict(blocks=("r1_k3_s11_e1_i32_o16",)), "not a BlockSpec"),
    (dict(stem_filters=0), "stem_filters"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout="0.2"), "dropout"),
])
def test_arch_spec_validation(changes: dict, message: str) -> None:
    fields = dict(blocks=(decode_block("r1_k3_s11_e1_i32_o16"),))
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        ArchSpec(**fields)


# --- timm and TF interoperability: the rules timm's decoder and builder apply (no timm needed) ---
# TF's mnasnet_small (mnasnet_models.py): its code builds a stem of 8 before these strings.
TF_MNASNET_SMALL = ["r1_k3_s11_e1_i16_o8", "r1_k3_s22_e3_i8_o16", "r2_k3_s22_e6_i16_o16",
                    "r4_k5_s22_e6_i16_o32_se0.25", "r3_k3_s11_e6_i32_o32_se0.25",
                    "r3_k5_s22_e6_i32_o88_se0.25", "r1_k3_s11_e6_i88_o144"]


def test_timm_cn_has_a_residual_only_with_skip() -> None:
    bare, skip, noskip = (decode_arch([f"cn_r2_k3_s1_c32{t}"], format="timm").blocks[0]
                          for t in ("", "_skip", "_noskip"))
    assert bare.skip == "none" and noskip.skip == "none" and skip.skip == "identity"
    block = decode_block("r3_k3_s11_e1_i80_o72_conv")  # the example: identity skip
    assert encode_arch(ArchSpec((block,), stem_filters=80), format="timm") == \
        ["cn_r3_k3_s1_c72_skip"]
    assert encode_arch(ArchSpec((block.with_(skip="none"),), stem_filters=80),
                       format="timm") == ["cn_r3_k3_s1_c72"]


def test_timm_skip_token_on_ir_and_ds_is_the_default_residual() -> None:
    plain = decode_arch(["ir_r2_k3_s1_e6_c32"], format="timm")
    assert decode_arch(["ir_r2_k3_s1_e6_c32_skip"], format="timm") == plain


@pytest.mark.parametrize("strings, token, why", [
    (["ir_r1_k3_s1_e1_c16"], "e1", "1x1 expansion conv"),
    (["cn_r1_k3_s1_c32_se0.25"], "se0.25", "ignores se on cn_"),
    (["ir_r1_k3_s1_e6_c32_poolskip"], "poolskip", "ignores 'poolskip'"),
    (["cn_r1_k3_s1_c32_skip_noskip"], "skip", "exclude each other"),
])
def test_timm_strings_timm_builds_differently_are_refused(strings: list[str], token: str,
                                                          why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        decode_arch(strings, format="timm")
    assert f"token {token!r}" in str(info.value) and repr(strings[0]) in str(info.value)


@pytest.mark.parametrize("block, why", [
    (BlockSpec("conv", 1, 3, 1, 1, 32, 32, 0.25, "identity"), "ignores se on cn_"),
    (BlockSpec("ir", 2, 3, 2, 6, 32, 24, 0.0, "pool"), "no pooling skip"),
    (BlockSpec("ir", 1, 3, 1, 6, 32, 20, 0.0, "identity"), "rounds output width 20 to 24"),
    (BlockSpec("ir", 1, 3, 1, 3, 12, 16, 0.0, "identity"), "expanded width 12x3=36"),
    (BlockSpec("ds", 1, 3, 1, 1, 24, 24, 0.0625, "identity"), "SE squeezes 24x0.0625 to 2"),
])
def test_timm_encoding_refuses_blocks_timm_cannot_express(block: BlockSpec, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        encode_timm_block(block)
    assert str(info.value).startswith(f"block {encode_block(block)!r}:")
    assert len(str(info.value).splitlines()) == 1
    if block.in_filters % 8 == 0:  # the whole list too
        with pytest.raises(ValueError, match=why):
            encode_arch(ArchSpec((block,), stem_filters=block.in_filters), format="timm")


def test_timm_pool_skip_without_shape_change_is_written_as_identity() -> None:
    block = BlockSpec("ir", 3, 3, 1, 6, 32, 32, 0.25, "pool")  # pooling skip = identity here
    arch = ArchSpec((block,), stem_filters=32)
    assert encode_arch(arch, format="timm") == ["ir_r3_k3_s1_e6_c32_se0.25"]
    assert decode_arch(encode_arch(arch, format="timm"), format="timm").blocks[0] == \
        block.with_(skip="identity")


def test_timm_stem_must_be_a_width_timm_keeps() -> None:
    with pytest.raises(ValueError, match="stem_filters 12"):
        decode_arch(["ir_r1_k3_s1_e6_c16"], format="timm", stem_filters=12)


def test_tf_mnasnet_small_with_stem_8_is_tfs_network() -> None:
    from search_spaces import build_model, count_params
    arch = decode_arch(TF_MNASNET_SMALL, stem_filters=8)
    assert arch.blocks[0] == BlockSpec("ds", 1, 3, 1, 1, 8, 8, 0.0, "none")  # TF: i16 != o8
    assert count_params(build_model(arch)) == 2_030_264  # TF's own count for mnasnet_small
    assert encode_arch(arch)[0] == "r1_k3_s11_e1_i8_o8_noskip"
    assert decode_arch(encode_arch(arch)) == arch
    assert count_params(build_model(decode_arch(TF_MNASNET_SMALL))) == 2_030_648  # stem 16


def test_tf_stem_mismatch_that_tf_would_size_from_i_is_refused() -> None:
    with pytest.raises(ValueError, match="expansion or SE"):
        decode_arch(["r1_k3_s11_e6_i16_o8"], stem_filters=8)


# timm's mobilenetv2_100 arch_def (timm/models/efficientnet.py, _gen_mobilenet_v2; act relu6).
TIMM_MOBILENET_V2 = ["ds_r1_k3_s1_c16", "ir_r2_k3_s2_e6_c24", "ir_r3_k3_s2_e6_c32",
                     "ir_r4_k3_s2_e6_c64", "ir_r3_k3_s1_e6_c96", "ir_r3_k3_s2_e6_c160",
                     "ir_r1_k3_s1_e6_c320"]


def test_relu6_tokens_round_trip_in_both_formats() -> None:
    block = decode_block("r2_k3_s22_e6_i16_o24_relu6")
    assert block.act == "relu6" and encode_block(block) == "r2_k3_s22_e6_i16_o24_relu6"
    assert decode_block("relu6_r2_k3_s22_e6_i16_o24") == block  # order does not matter
    arch = decode_arch(["ir_r2_k3_s2_e6_c24_nr6"], format="timm")
    assert arch.blocks[0].act == "relu6" and arch.activation == "relu6"
    assert encode_arch(arch, format="timm") == ["ir_r2_k3_s2_e6_c24_nr6"]
    with pytest.raises(ValueError, match="one activation token"):
        decode_block("r2_k3_s22_e6_i16_o24_relu6_swish")
    with pytest.raises(ValueError, match="token 'relu7'"):
        decode_block("r2_k3_s22_e6_i16_o24_relu7")


def test_mobilenet_v2_reads_as_timms_network_with_relu6() -> None:
    """timm's own strings with its network-wide ReLU6 (`act_layer`, which blocks without an
    ``n`` token take) give the reference; mnas writes each block's ``nr6``."""
    arch = reference_arch("mobilenet_v2")
    assert arch.activation == "relu6" and {b.act for b in arch.blocks} == {"relu6"}
    assert decode_arch(TIMM_MOBILENET_V2, format="timm", activation="relu6") == arch
    assert {b.act for b in decode_arch(TIMM_MOBILENET_V2, format="timm").blocks} == {"relu"}
    written = encode_arch(arch, format="timm")
    assert written == [s.replace("ds_r1_k3_s1_c16", "ds_r1_k3_s1_e1_c16") + "_nr6"
                       for s in TIMM_MOBILENET_V2]
    assert decode_arch(written, format="timm") == arch


def test_timm_relu_blocks_in_a_network_of_another_activation_say_so() -> None:
    """timm gives a block without an ``n`` token the network's activation: a ReLU block in a
    swish network is written ``_nre``, and read back as ReLU."""
    arch = decode_arch(["ir_r1_k3_s1_e6_c32_nsw", "ir_r1_k3_s1_e6_c32"], format="timm",
                       activation="swish")
    assert [b.act for b in arch.blocks] == ["swish", "swish"]  # the second from act_layer
    mixed = arch.with_(blocks=(arch.blocks[0], arch.blocks[1].with_(act="relu")))
    text = encode_arch(mixed, format="timm")
    assert text == ["ir_r1_k3_s1_e6_c32_nsw", "ir_r1_k3_s1_e6_c32_nre"]
    assert decode_arch(text, format="timm", activation="swish") == mixed
    assert encode_arch(mixed.with_(activation="relu"), format="timm")[1] == "ir_r1_k3_s1_e6_c32"
