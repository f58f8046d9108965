"""Lookup-table keys: every distinct layer a space can produce, keyed by what determines its cost.

A layer's cost depends on op, expansion, kernel, stride, input/output width, SE ratio, the
*effective* skip (an identity skip that cannot apply is no skip; a pooling skip without a shape
change is an identity) and its input resolution. Stem and head get their own entries. The
analytic multiply-add and weight counts here feed the `flops` predictor and calibration features
without building models (they must agree with `search_spaces.count_macs`; tests check that).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from torch import nn

from search_spaces import build_network
from search_spaces.builder import ConvBNAct, Head, build_layer
from search_spaces.onnx_export import export_onnx_bytes
from search_spaces.reference import reference_arch
from search_spaces.space import MnasNetSpace, parse_op
from search_spaces.specs import LayerSpec, out_size


def effective_skip(spec: LayerSpec) -> str:
    """'none', 'id' (identity add) or 'pool' (pooled/projected shortcut): what is really built."""
    if not spec.has_residual:
        return "none"
    if spec.skip == "pool" and (spec.stride > 1 or spec.in_filters != spec.out_filters):
        return "pool"
    return "id"


def layer_key(spec: LayerSpec, res: int) -> str:
    return (f"{spec.op}_e{spec.expansion}_k{spec.kernel}_s{spec.stride}_i{spec.in_filters}"
            f"_o{spec.out_filters}_se{spec.se_ratio:g}_{effective_skip(spec)}_r{res}"
            + ("" if spec.act == "relu" else f"_{spec.act}"))


def stem_key(in_channels: int, filters: int, stride: int, res: int) -> str:
    return f"stem_c{in_channels}_o{filters}_s{stride}_r{res}"


def head_key(in_filters: int, head: int, classes: int, res: int) -> str:
    return f"head_i{in_filters}_o{head}_n{classes}_r{res}"


@dataclass(frozen=True)
class Entry:
    """One table entry: how to build the module in isolation and the input it sees."""

    key: str
    kind: str  # "layer" | "stem" | "head"
    res: int
    in_channels: int
    spec: LayerSpec | None = None
    out_filters: int = 0
    stride: int = 1
    classes: int = 0

    def build(self) -> nn.Module:
        if self.kind == "layer":
            if self.spec is None:
                raise ValueError(f"table entry {self.key!r}: a layer entry needs its LayerSpec")
            return build_layer(self.spec)
        if self.kind == "stem":
            return ConvBNAct(self.in_channels, self.out_filters, 3, self.stride)
        return Head(self.in_channels, self.out_filters, self.classes, 0.0)


def layer_macs(spec: LayerSpec, res: int) -> int:
    """Exact conv multiply-adds of one layer at input resolution `res` (as count_macs counts)."""
    r2 = out_size(res, spec.stride) ** 2
    i, o, k = spec.in_filters, spec.out_filters, spec.kernel
    if spec.op == "conv":
        macs = r2 * i * o * k * k
        se_ch = o
    else:
        m = spec.mid_filters
        macs = (res * res * i * m if spec.expansion != 1 else 0) + r2 * m * k * k + r2 * m * o
        se_ch = m
    if spec.se_ratio > 0:
        macs += 2 * se_ch * spec.se_filters
    if effective_skip(spec) == "pool" and i != o:
        macs += r2 * i * o
    return macs


def layer_weights(spec: LayerSpec) -> int:
    """Conv/SE weights of one layer (BN folds into convs at inference, so it is left out)."""
    i, o, k = spec.in_filters, spec.out_filters, spec.kernel
    if spec.op == "conv":
        w, se_ch = i * o * k * k, o
    else:
        m = spec.mid_filters
        w, se_ch = (i * m if spec.expansion != 1 else 0) + m * k * k + m * o, m
    if spec.se_ratio > 0:
        w += 2 * se_ch * spec.se_filters + spec.se_filters + se_ch
    if effective_skip(spec) == "pool" and i != o:
        w += i * o
    return w


def stem_macs(in_channels: int, filters: int, stride: int, input_size: int) -> int:
    return out_size(input_size, stride) ** 2 * in_channels * filters * 9


def head_macs(in_filters: int, head: int, classes: int, res: int) -> int:
    return res * res * in_filters * head + head * classes


def stem_weights(in_channels: int, filters: int) -> int:
    return in_channels * filters * 9


def head_weights(in_filters: int, head: int, classes: int) -> int:
    return in_filters * head + head * classes + classes


def space_entries(space: MnasNetSpace, in_channels: int = 3) -> list[Entry]:
    """Every distinct entry reachable in `space`, deduplicated, in network order.

    A block's first layer can see any output width of the previous block (the stem's width for
    block 1); the repeated layers run out->out at stride 1 and exist when some layer-count choice
    gives more than one layer."""
    seen: dict[str, Entry] = {}

    def add(entry: Entry) -> None:
        seen.setdefault(entry.key, entry)

    size = space.input_size
    add(Entry(stem_key(in_channels, space.stem_filters, space.stem_stride, size), "stem", size,
              in_channels, out_filters=space.stem_filters, stride=space.stem_stride))
    res = out_size(size, space.stem_stride)
    in_widths = {space.stem_filters}
    for b, base in enumerate(space.base):
        outs = sorted({space.block_out_filters(b, m) for m in space.filter_multipliers})
        repeats = max(1, base.layers + max(space.layer_deltas))
        for design in _designs(space):
            op, e, k, se, skip = design
            for o in outs:
                for i in sorted(in_widths):
                    spec = LayerSpec(op, k, base.stride, e, i, o, se, skip)
                    add(Entry(layer_key(spec, res), "layer", res, i, spec=spec))
                if repeats > 1:
                    spec = LayerSpec(op, k, 1, e, o, o, se, skip)
                    r2 = out_size(res, base.stride)
                    add(Entry(layer_key(spec, r2), "layer", r2, o, spec=spec))
        res = out_size(res, base.stride)
        in_widths = set(outs)
    for i in sorted(in_widths):
        add(Entry(head_key(i, space.head_filters, space.num_classes, res), "head", res, i,
                  out_filters=space.head_filters, classes=space.num_classes))
    return list(seen.values())


def _designs(space: MnasNetSpace) -> Iterator[tuple[str, int, int, float, str]]:
    for op_name in space.ops:
        op, e = parse_op(op_name)
        for k in space.kernels:
            for se in space.se_ratios:
                for skip in space.skips:
                    yield op, e, k, float(se), skip


def entry_onnx(entry: Entry) -> bytes:
    """The ONNX graph that times one entry."""
    return export_onnx_bytes(entry.build(), entry.res, entry.in_channels)


def arch_onnx(space: MnasNetSpace, arch: Any) -> bytes:
    """The ONNX graph of a whole network (an `ArchSpec` or a reference `FamilyModel`) at the
    space's resolution (end-to-end timing)."""
    return export_onnx_bytes(build_network(arch, num_classes=space.num_classes), space.input_size)


def canary_onnx(space: MnasNetSpace) -> bytes:
    """A fixed network at the space's resolution, timed alongside everything to detect drift."""
    return arch_onnx(space, reference_arch("mnasnet_a1"))
