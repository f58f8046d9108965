"""Layer rules of the builder (official MnasNet code) and the exact parameter / MAC counters on
tiny models whose figures are computed by hand below."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces import (ArchSpec, LayerSpec, build_model, count_macs, count_params, decode_arch,
                           decode_block, reference_arch)
from search_spaces.builder import (InvertedResidual, PoolShortcut, RegularConv, SqueezeExcite,
                                   build_layer)


def _layer(op: str = "ir", *, kernel: int = 3, stride: int = 1, expansion: int = 6,
           cin: int = 16, cout: int = 16, se: float = 0.0, skip: str = "identity") -> LayerSpec:
    return LayerSpec(op, kernel, stride, expansion, cin, cout, se, skip)


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def _run(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    layer.eval()
    with torch.no_grad():
        return layer(x)


# -- expansion --------------------------------------------------------------------------------
def test_expand_conv_only_when_expansion_is_not_one() -> None:
    ir = build_layer(_layer("ir", expansion=6, cin=16, cout=24))
    first = _convs(ir.body)[0]
    assert isinstance(ir, InvertedResidual)
    assert (first.in_channels, first.out_channels, first.kernel_size, first.groups) == (
        16, 96, (1, 1), 1)
    ds = build_layer(_layer("ds", expansion=1, cin=16, cout=24))
    first = _convs(ds.body)[0]
    assert (first.in_channels, first.out_channels, first.kernel_size, first.groups) == (
        16, 16, (3, 3), 16)
    assert len(_convs(ds.body)) == 2  # depthwise + project only


def test_mbconv_structure_and_linear_projection() -> None:
    layer = build_layer(_layer("ir", kernel=5, stride=2, expansion=3, cin=24, cout=40))
    expand, depthwise, project = _convs(layer.body)
    assert depthwise.kernel_size == (5, 5) and depthwise.stride == (2, 2)
    assert depthwise.groups == 72 and depthwise.padding == (2, 2)
    assert (project.in_channels, project.out_channels) == (72, 40)
    assert not isinstance(list(layer.body.modules())[-1], nn.ReLU)  # no activation after project
    assert all(c.bias is None for c in (expand, depthwise, project))


# -- squeeze-excitation -----------------------------------------------------------------------
@pytest.mark.parametrize("cin, expansion, se, squeeze", [
    (24, 3, 0.25, 6), (80, 6, 0.25, 20), (112, 6, 0.25, 28), (3, 6, 0.25, 1), (10, 1, 0.25, 2),
])
def test_se_squeeze_width_comes_from_layer_input(cin: int, expansion: int, se: float,
                                                  squeeze: int) -> None:
    op = "ds" if expansion == 1 else "ir"
    layer = build_layer(_layer(op, expansion=expansion, cin=cin, cout=cin, se=se))
    (se_module,) = [m for m in layer.modules() if isinstance(m, SqueezeExcite)]
    assert se_module.reduce.out_channels == squeeze == max(1, int(cin * se))
    assert se_module.reduce.in_channels == se_module.expand.out_channels == cin * expansion
    assert se_module.reduce.bias is not None and se_module.expand.bias is not None


def test_se_width_in_later_layers_uses_the_block_output() -> None:
    layers = list(decode_block("r3_k5_s22_e3_i24_o40_se0.25").layers())
    assert [layer.se_filters for layer in layers] == [6, 10, 10]


def test_no_se_module_without_se_ratio() -> None:
    assert not any(isinstance(m, SqueezeExcite) for m in build_layer(_layer(se=0.0)).modules())


def test_se_gate_scales_channels() -> None:
    se = SqueezeExcite(4, 1)
    x = torch.randn(2, 4, 3, 3)
    gate = torch.sigmoid(se.expand(torch.relu(se.reduce(x.mean((2, 3), keepdim=True)))))
    assert torch.allclose(_run(se, x), x * gate)


# -- skip ops ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stride, cin, cout, residual", [
    (1, 16, 16, True), (2, 16, 16, False), (1, 16, 24, False), (2, 16, 24, False)])
def test_identity_residual_only_at_stride_one_with_equal_widths(
        stride: int, cin: int, cout: int, residual: bool) -> None:
    spec = _layer(stride=stride, cin=cin, cout=cout, skip="identity")
    layer = build_layer(spec)
    assert spec.has_residual is residual
    x = torch.randn(1, cin, 8, 8)
    out, body = _run(layer, x), _run(layer.body, x)
    if residual:
        assert isinstance(layer.shortcut, nn.Identity)
        assert torch.allclose(out, body + x)
    else:
        assert layer.shortcut is None
        assert torch.equal(out, body)


def test_noskip_adds_nothing() -> None:
    spec = _layer(stride=1, cin=16, cout=16, skip="none")
    layer = build_layer(spec)
    x = torch.randn(1, 16, 8, 8)
    assert not spec.has_residual and layer.shortcut is None
    assert torch.equal(_run(layer, x), _run(layer.body, x))


@pytest.mark.parametrize("stride, cin, cout, pooled, projected", [
    (2, 16, 24, True, True), (2, 16, 16, True, False), (1, 16, 24, False, True)])
def test_pool_skip_adds_pooled_projected_shortcut_when_shape_changes(
        stride: int, cin: int, cout: int, pooled: bool, projected: bool) -> None:
    layer = build_layer(_layer(stride=stride, cin=cin, cout=cout, skip="pool"))
    shortcut = layer.shortcut
    assert isinstance(shortcut, PoolShortcut)
    assert isinstance(shortcut.pool, nn.AvgPool2d) is pooled
    assert isinstance(shortcut.proj, nn.Sequential) is projected
    x = torch.randn(1, cin, 9, 9)  # odd size: pooled and strided-conv shapes must still agree
    out = _run(layer, x)
    assert out.shape == (1, cout, 5 if stride == 2 else 9, 5 if stride == 2 else 9)
    assert torch.allclose(out, _run(layer.body, x) + _run(shortcut, x))
    if pooled:
        pooled_x = nn.functional.avg_pool2d(x, stride, stride, ceil_mode=True)
        assert torch.allclose(_run(shortcut.pool, x), pooled_x)


def test_pool_skip_is_identity_when_shape_is_unchanged() -> None:
    layer = build_layer(_layer(stride=1, cin=16, cout=16, skip="pool"))
    assert isinstance(layer.shortcut, nn.Identity)
    x = torch.randn(1, 16, 6, 6)
    assert torch.allclose(_run(layer, x), _run(layer.body, x) + x)


# -- regular conv -----------------------------------------------------------------------------
def test_regular_conv_layer() -> None:
    layer = build_layer(_layer("conv", kernel=5, stride=2, expansion=1, cin=16, cout=24, se=0.25,
                               skip="none"))
    assert isinstance(layer, RegularConv)
    conv, reduce, expand = _convs(layer)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.groups) == (
        16, 24, (5, 5), (2, 2), 1)
    assert (reduce.in_channels, reduce.out_channels, expand.out_channels) == (24, 4, 24)
    assert any(isinstance(m, nn.ReLU) for m in layer.body.modules())


# -- BatchNorm --------------------------------------------------------------------------------
def test_batchnorm_uses_tf_momentum_and_epsilon() -> None:
    model = build_model(decode_arch(["r1_k3_s11_e1_i32_o16_poolskip", "r1_k3_s22_e1_i16_o24_conv",
                                     "r2_k5_s22_e3_i24_o40_se0.25"]))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) > 8
    assert all(bn.momentum == 0.01 and bn.eps == 1e-3 for bn in bns)


# -- counters on hand-computable models -------------------------------------------------------
def test_mac_and_param_counter_on_tiny_model() -> None:
    """8x8 input, stem 3->8 stride 2 (4x4), one ds block 8->16 stride 2 with SE 0.25 and a pool
    skip (2x2), head 1x1 -> 32, FC -> 10. Every conv has no bias except SE's; BN has 2/channel.

    MACs: stem 4*4*8*3*9 = 3456; depthwise 2*2*8*9 = 288; SE 8*2 + 2*8 = 32; project 2*2*16*8 =
    512; shortcut 1x1 2*2*16*8 = 512; head 2*2*32*16 = 2048; FC 32*10 = 320 -> 7168.
    Params: stem 216+16; dw 72+16; SE 8*2+2 + 2*8+8 = 42; project 128+32; shortcut 128+32;
    head 512+64; FC 320+10 -> 1588."""
    arch = decode_arch(["r1_k3_s22_e1_i8_o16_se0.25_poolskip"], head_filters=32)
    model = build_model(arch, num_classes=10)
    assert count_macs(model, 8) == 7168
    assert count_params(model) == 1588


def test_mac_and_param_counter_on_regular_conv_model() -> None:
    """8x8 input, stem 3->8 stride 2 (4x4), two 5x5 regular convs 8->8 with identity residual,
    head 1x1 -> 16, FC -> 10. MACs: 3456 + 2*(4*4*8*8*25) + 4*4*16*8 + 16*10 = 56864.
    Params: 232 + 2*(1600+16) + (128+32) + 170 = 3794."""
    arch = decode_arch(["r2_k5_s11_e1_i8_o8_conv"], head_filters=16)
    model = build_model(arch, num_classes=10)
    assert count_macs(model, 8) == 56864
    assert count_params(model) == 3794


def test_count_macs_scales_with_resolution_and_restores_mode() -> None:
    model = build_model(reference_arch("mnasnet_b1"), num_classes=10).train()
    small, large = count_macs(model, 64), count_macs(model, 128)  # 2x2 and 4x4 at the end
    assert model.training
    head_fc = 1280 * 10
    assert (large - head_fc) == pytest.approx(4 * (small - head_fc), rel=1e-9)


def test_model_rejects_bad_sizes() -> None:
    arch: ArchSpec = reference_arch("mnasnet_a1")
    with pytest.raises(ValueError, match="num_classes"):
        build_model(arch, num_classes=0)
    model = build_model(arch, num_classes=7, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 7)
