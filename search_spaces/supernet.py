"""A one-shot supernet over a `MnasNetSpace`: every child is a slice of one set of shared weights.

Weight sharing (ENAS, Single-Path One-Shot, Once-for-All) trains one network that contains every
child, so a child is scored with inherited weights in about a second instead of minutes of
training. How each decision maps onto the shared weights:

- kernel: one k_max x k_max kernel per conv; a smaller kernel is its centre (`crop`), or the centre
  passed through a learned (k*k x k*k) matrix per conv and kernel size (`ofa`, Once-for-All's
  kernel transform, initialised to the identity so both start equal);
- MBConv expansion and the block's output filters: the first channels of the widest weights;
- layer count: the first N layer slots of the deepest block;
- SE on/off and ratio: the first rows/columns of the widest squeeze-excite weights;
- skip op: identity and none have no weights; the pooling skip's 1x1 projection is sliced too;
- the regular conv (`conv`) and the depthwise-separable conv (`dconv`, no expansion conv, so its
  depthwise kernel sees raw input channels, not expanded ones) each have weights of their own.

BatchNorm parameters are sliced like the convs; running statistics are shared buffers and are
meant to be re-estimated per child (`mnas.supernet.evaluate` recalibrates an extracted child).
`SuperNet.extract(arch)` copies the active slices into the builder's own `MnasNet`, so a child
leaves as a plain model with exactly the builder's layers; `SuperNet.view(arch)` is a module that
runs the child inside the supernet. Both compute the same function (tested).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .builder import BN_EPS, BN_MOMENTUM, ConvBNAct, MnasNet, SqueezeExcite, build_model
from .space import MnasNetSpace, parse_op
from .specs import ArchSpec, LayerSpec

KERNEL_TRANSFORMS = ("crop", "ofa")


class SuperBN(nn.BatchNorm2d):
    """BatchNorm over the first C of `channels`: parameters and running statistics sliced. A
    `BatchNorm2d` subclass, so BN recalibration (reset, cumulative momentum) treats it alike."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        factor = 0.0
        if self.training:
            self.num_batches_tracked += 1
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c],
                            self.bias[:c], self.training, factor, self.eps)

    @torch.no_grad()
    def copy_to(self, bn: nn.BatchNorm2d) -> None:
        c = bn.num_features
        bn.weight.copy_(self.weight[:c])
        bn.bias.copy_(self.bias[:c])
        bn.running_mean.copy_(self.running_mean[:c])
        bn.running_var.copy_(self.running_var[:c])
        bn.num_batches_tracked.copy_(self.num_batches_tracked)


class KernelBank(nn.Module):
    """The widest conv weight (out, in/groups, k_max, k_max); `kernel(k, out, in)` slices it."""

    def __init__(self, out: int, inp: int, kernels: Sequence[int], transform: str) -> None:
        super().__init__()
        self.kernels = tuple(sorted(set(kernels), reverse=True))
        kmax = self.kernels[0]
        self.weight = nn.Parameter(torch.empty(out, inp, kmax, kmax))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.transforms = nn.ParameterDict()
        if transform == "ofa":
            for k in self.kernels[1:]:
                self.transforms[str(k)] = nn.Parameter(torch.eye(k * k))

    def kernel(self, k: int, out: int, inp: int) -> torch.Tensor:
        """The (out, inp, k, k) weight: the centre of the next larger kernel in the chain k_max >
        ... > k, each step through its transform matrix when there is one."""
        w = self.weight[:out, :inp]
        current = self.kernels[0]
        for smaller in self.kernels[1:]:
            if current == k:
                break
            start = (current - smaller) // 2
            w = w[:, :, start:start + smaller, start:start + smaller]
            if str(smaller) in self.transforms:
                flat = w.reshape(-1, smaller * smaller)
                w = (flat @ self.transforms[str(smaller)]).reshape(w.shape)
            current = smaller
        if current != k:
            raise ValueError(f"kernel {k} is not one of this conv's kernels {self.kernels}")
        return w


class SuperSE(nn.Module):
    """Squeeze-excite over the first C channels with the first S squeeze units."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.expand = nn.Conv2d(squeeze, channels, 1, bias=True)

    def slices(self, c: int, s: int) -> tuple[torch.Tensor, ...]:
        return (self.reduce.weight[:s, :c], self.reduce.bias[:s],
                self.expand.weight[:c, :s], self.expand.bias[:c])

    def forward(self, x: torch.Tensor, s: int) -> torch.Tensor:
        rw, rb, ew, eb = self.slices(x.shape[1], s)
        g = F.conv2d(torch.relu(F.conv2d(x.mean((2, 3), keepdim=True), rw, rb)), ew, eb)
        return x * torch.sigmoid(g)

    @torch.no_grad()
    def copy_to(self, se: SqueezeExcite) -> None:
        c, s = se.reduce.in_channels, se.reduce.out_channels
        for dst, src in zip((se.reduce.weight, se.reduce.bias, se.expand.weight, se.expand.bias),
                            self.slices(c, s)):
            dst.copy_(src)


@dataclass(frozen=True)
class ConvStage:
    """conv (k, stride, groups) -> BN -> optional ReLU, as the builder's `ConvBNAct`."""

    bank: KernelBank
    bn: SuperBN
    k: int
    out: int
    inp: int
    stride: int = 1
    depthwise: bool = False
    act: bool = True

    def weight(self) -> torch.Tensor:
        return self.bank.kernel(self.k, self.out, 1 if self.depthwise else self.inp)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight(), None, self.stride, self.k // 2,
                     groups=self.out if self.depthwise else 1)
        x = self.bn(x)
        return torch.relu(x) if self.act else x

    def params(self) -> int:
        return int(self.weight().numel()) + 2 * self.out


@dataclass(frozen=True)
class SEStage:
    se: SuperSE
    channels: int
    squeeze: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(x, self.squeeze)

    def params(self) -> int:
        return sum(t.numel() for t in self.se.slices(self.channels, self.squeeze))


Stage = ConvStage | SEStage


class SuperLayer(nn.Module):
    """One layer slot of a block: the widest weights of every op the space allows there."""

    def __init__(self, cin: int, cout: int, ops: set[tuple[str, int]], kernels: Sequence[int],
                 se_max: float, pool: bool, transform: str) -> None:
        super().__init__()
        squeeze = max(1, int(cin * se_max)) if se_max > 0 else 0
        emax = max((e for op, e in ops if op == "ir"), default=0)
        if emax:
            mid = cin * emax
            self.ir = nn.ModuleDict(dict(
                expand=KernelBank(mid, cin, (1,), transform), bn1=SuperBN(mid),
                dw=KernelBank(mid, 1, kernels, transform), bn2=SuperBN(mid),
                project=KernelBank(cout, mid, (1,), transform), bn3=SuperBN(cout)))
            if squeeze:
                self.ir["se"] = SuperSE(mid, squeeze)
        if ("ds", 1) in ops:
            self.ds = nn.ModuleDict(dict(
                dw=KernelBank(cin, 1, kernels, transform), bn1=SuperBN(cin),
                project=KernelBank(cout, cin, (1,), transform), bn2=SuperBN(cout)))
            if squeeze:
                self.ds["se"] = SuperSE(cin, squeeze)
        if ("conv", 1) in ops:
            self.conv = nn.ModuleDict(dict(conv=KernelBank(cout, cin, kernels, transform),
                                           bn=SuperBN(cout)))
            if squeeze:
                self.conv["se"] = SuperSE(cout, squeeze)
        if pool:
            self.pool = nn.ModuleDict(dict(project=KernelBank(cout, cin, (1,), transform),
                                           bn=SuperBN(cout)))

    def body(self, spec: LayerSpec) -> list[Stage]:
        """The stages `spec` runs, in the builder's order (see `search_spaces.builder`)."""
        cin, cout, k, s = spec.in_filters, spec.out_filters, spec.kernel, spec.stride
        se = spec.se_filters
        if spec.op == "conv":
            m = self.conv
            stages: list[Stage] = [ConvStage(m["conv"], m["bn"], k, cout, cin, s)]
            return stages + ([SEStage(m["se"], cout, se)] if se else [])
        m = self.ir if spec.op == "ir" else self.ds
        mid = spec.mid_filters
        stages = []
        if spec.op == "ir":
            stages.append(ConvStage(m["expand"], m["bn1"], 1, mid, cin))
            dw_bn, proj_bn = m["bn2"], m["bn3"]
        else:
            dw_bn, proj_bn = m["bn1"], m["bn2"]
        stages.append(ConvStage(m["dw"], dw_bn, k, mid, mid, s, depthwise=True))
        if se:
            stages.append(SEStage(m["se"], mid, se))
        stages.append(ConvStage(m["project"], proj_bn, 1, cout, mid, act=False))
        return stages

    def shortcut(self, spec: LayerSpec) -> tuple[str, ConvStage | None]:
        """("none" | "identity" | "pool", the projection stage when the pooling skip has one)."""
        if not spec.has_residual:
            return "none", None
        if spec.skip == "pool" and (spec.stride > 1 or spec.in_filters != spec.out_filters):
            proj = (ConvStage(self.pool["project"], self.pool["bn"], 1, spec.out_filters,
                              spec.in_filters, act=False)
                    if spec.in_filters != spec.out_filters else None)
            return "pool", proj
        return "identity", None

    def forward(self, x: torch.Tensor, spec: LayerSpec) -> torch.Tensor:
        out = x
        for stage in self.body(spec):
            out = stage(out)
        kind, proj = self.shortcut(spec)
        if kind == "none":
            return out
        short = x
        if kind == "pool":
            if spec.stride > 1:
                short = F.avg_pool2d(short, spec.stride, spec.stride, ceil_mode=True)
            if proj is not None:
                short = proj(short)
        return out + short


class SuperNet(nn.Module):
    """Stem, per block the deepest stack of `SuperLayer`s at its widest, head. Forward runs one
    child (`arch`, or the one set with `set_active`)."""

    def __init__(self, space: MnasNetSpace, num_classes: int | None = None, in_channels: int = 3,
                 kernel_transform: str = "crop") -> None:
        super().__init__()
        if kernel_transform not in KERNEL_TRANSFORMS:
            raise ValueError(f"kernel_transform: expected one of {', '.join(KERNEL_TRANSFORMS)}, "
                             f"got {kernel_transform!r}")
        self.space, self.kernel_transform = space, kernel_transform
        self.num_classes = num_classes or space.num_classes
        self.in_channels = in_channels
        ops = {parse_op(o) for o in space.ops}
        se_max = max(space.se_ratios)
        pool = "pool" in space.skips
        self.stem = ConvBNAct(in_channels, space.stem_filters, 3, space.stem_stride)
        self.blocks = nn.ModuleList()
        width = space.stem_filters
        for i, base in enumerate(space.base):
            out = max(space.block_out_filters(i, m) for m in space.filter_multipliers)
            depth = max(1, base.layers + max(space.layer_deltas))
            self.blocks.append(nn.ModuleList(
                SuperLayer(width if j == 0 else out, out, ops, space.kernels, se_max, pool,
                           kernel_transform) for j in range(depth)))
            width = out
        self.head_conv = KernelBank(space.head_filters, width, (1,), kernel_transform)
        self.head_bn = SuperBN(space.head_filters)
        self.fc = nn.Linear(space.head_filters, self.num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)
        self.active: ArchSpec | None = None

    # -- children -----------------------------------------------------------------------------
    def check(self, arch: ArchSpec) -> ArchSpec:
        """`arch` if it is a child of this supernet's space, else ValueError saying why."""
        self.space.encode(arch)
        return arch

    def set_active(self, arch: ArchSpec) -> None:
        self.active = self.check(arch)

    def _stages(self, arch: ArchSpec) -> Iterator[tuple[SuperLayer, LayerSpec]]:
        for i, block in enumerate(arch.blocks):
            for j, spec in enumerate(block.layers()):
                yield self.blocks[i][j], spec

    def _head(self, arch: ArchSpec) -> ConvStage:
        return ConvStage(self.head_conv, self.head_bn, 1, arch.head_filters,
                         arch.blocks[-1].out_filters)

    def forward(self, x: torch.Tensor, arch: ArchSpec | None = None) -> torch.Tensor:
        arch = arch if arch is not None else self.active
        if arch is None:
            raise ValueError("no child selected: pass arch or call set_active(arch) first")
        x = self.stem(x)
        for layer, spec in self._stages(arch):
            x = layer(x, spec)
        x = self._head(arch)(x).mean((2, 3))
        return self.fc(F.dropout(x, arch.dropout, self.training))

    def view(self, arch: ArchSpec) -> "ChildView":
        """A plain module that runs `arch` inside this supernet (shared weights, no copy)."""
        return ChildView(self, self.check(arch))

    def active_params(self, arch: ArchSpec) -> int:
        """Parameters the child uses, counted from the slices (the builder's count must agree)."""
        total = sum(int(p.numel()) for p in self.stem.parameters())
        for layer, spec in self._stages(arch):
            stages = list(layer.body(spec))
            proj = layer.shortcut(spec)[1]
            total += sum(s.params() for s in stages + ([proj] if proj is not None else []))
        fc = int(self.fc.weight.numel() + self.fc.bias.numel())
        return total + self._head(arch).params() + fc

    @torch.no_grad()
    def extract(self, arch: ArchSpec) -> MnasNet:
        """The child as the builder's `MnasNet` with the active slices copied in (running
        statistics included): a stand-alone model, numerically the same function."""
        model = build_model(self.check(arch), self.num_classes, self.in_channels)
        model.stem.load_state_dict(self.stem.state_dict())
        for (layer, spec), target in zip(self._stages(arch), model.layers):
            for stage, module in zip(layer.body(spec), target.body):
                _copy_stage(stage, module)
            proj = layer.shortcut(spec)[1]
            if proj is not None:
                _copy_stage(proj, target.shortcut.proj)
        _copy_stage(self._head(arch), model.head.conv)
        model.head.fc.load_state_dict(self.fc.state_dict())
        return model

    # -- sampling -----------------------------------------------------------------------------
    def extreme_actions(self, largest: bool) -> list[int]:
        """Actions of the largest (or smallest) child by multiply-adds per block choice: widest,
        deepest, biggest kernel/SE/expansion and the pooling skip, or the opposite."""
        pick = np.argmax if largest else np.argmin
        out = []
        for d in self.space.decisions:
            field = d.name.split(".", 1)[1]
            out.append(int(pick([_choice_cost(field, c) for c in d.choices])))
        return out


class ChildView(nn.Module):
    """One child of a supernet as an `nn.Module` (weights stay shared with the supernet)."""

    def __init__(self, supernet: SuperNet, arch: ArchSpec) -> None:
        super().__init__()
        self.supernet, self.arch = supernet, arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.arch)


def _copy_stage(stage: Stage, module: nn.Module) -> None:
    if isinstance(stage, SEStage):
        stage.se.copy_to(cast(SqueezeExcite, module))
        return
    module[0].weight.copy_(stage.weight())
    stage.bn.copy_to(module[1])


def _choice_cost(field: str, choice: Any) -> float:
    """An order of choices by cost, for the sandwich rule's largest and smallest children."""
    if field == "op":
        op, expansion = parse_op(choice)
        return {"ds": 0.0, "conv": 0.5}.get(op, float(expansion))
    if field == "skip":
        return {"none": 0.0, "identity": 1.0, "pool": 2.0}[choice]
    return float(choice)


def supernet_params(space: MnasNetSpace, num_classes: int | None = None,
                    in_channels: int = 3) -> int:
    """Parameters of the whole supernet (every op's widest weights)."""
    return sum(p.numel() for p in SuperNet(space, num_classes, in_channels).parameters())


__all__ = ["KERNEL_TRANSFORMS", "SuperNet", "ChildView", "supernet_params"]
