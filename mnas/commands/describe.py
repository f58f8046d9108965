"""`mnas describe`: the block table, parameters and multiply-adds of an architecture.

torch is imported by the command, not by this module: `mnas describe --help` answers without it."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mnas.commands import Subparsers
    from search_spaces import ArchSpec, Network


def _table_rows(arch: ArchSpec, input_size: int) -> list[tuple[str, ...]]:
    """Header, stem, one row per block (with its output resolution), head."""
    from search_spaces.specs import out_size

    res = out_size(input_size, arch.stem_stride)
    edge = "" if arch.activation == "relu" else f"+{arch.activation}"  # stem's and head's
    rows: list[tuple[str, ...]] = [
        ("block", "op", "k", "s", "e", "se", "skip", "r", "in", "out", "out res"),
        ("stem", "conv" + edge, "3", str(arch.stem_stride), "-", "-", "-", "1", "3",
         str(arch.stem_filters), f"{res}x{res}")]
    for i, b in enumerate(arch.blocks):
        res = out_size(res, b.stride)  # only a block's first layer strides
        op = b.op if b.act == "relu" else f"{b.op}+{b.act}"
        rows.append((str(i + 1), op, str(b.kernel), str(b.stride), str(b.expansion),
                     f"{b.se_ratio:g}", b.skip, str(b.repeats), str(b.in_filters),
                     str(b.out_filters), f"{res}x{res}"))
    rows.append(("head", "conv1x1" + edge, "1", "1", "-", "-", "-", "1",
                 str(arch.blocks[-1].out_filters), str(arch.head_filters), "1x1"))
    return rows


def describe_table(arch: Network, input_size: int, num_classes: int) -> str:
    """A human-readable block table with parameters and multiply-adds (a family outside the
    block grammar gets its name and paper instead of the table)."""
    from search_spaces import FamilyModel, build_network, count_macs, count_params

    if isinstance(arch, FamilyModel):
        from search_spaces.families import FAMILIES
        lines = [f"{arch.label}: {arch.family} at width {arch.width:g}, stem stride "
                 f"{arch.stem_stride} ({FAMILIES[arch.family].paper}; not in the block grammar)"]
    else:
        rows = _table_rows(arch, input_size)
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]
    model = build_network(arch, num_classes=num_classes)
    params, macs = count_params(model), count_macs(model, input_size)
    lines.append(f"input {input_size}x{input_size}, {num_classes} classes: "
                 f"{params:,} parameters, {macs / 1e6:,.1f}M multiply-adds")
    return "\n".join(lines)


#: Largest input size a command builds a model for (--input-size 100000 does not fit in memory).
MAX_INPUT_SIZE = 4096


def check_model_size(input_size: int, num_classes: int) -> None:
    """ValueError unless the input size and class count are positive and buildable."""
    if input_size < 1 or num_classes < 1:
        raise ValueError("--input-size and --num-classes must be positive")
    if input_size > MAX_INPUT_SIZE:
        raise ValueError(f"--input-size: at most {MAX_INPUT_SIZE}, got {input_size}")


def _run(args: argparse.Namespace) -> int:
    from mnas.architectures import resolve_arch

    check_model_size(args.input_size, args.num_classes)
    arch = resolve_arch(args.arch)
    try:
        table = describe_table(arch, args.input_size, args.num_classes)
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise
        raise ValueError(f"{' '.join(args.arch)}: too large to build in this machine's memory "
                         f"at input {args.input_size}") from None
    print(table)
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("describe", help="print an architecture's block table, params and MACs")
    p.add_argument("arch", nargs="+", help="reference name (e.g. mnasnet_a1, mobilenet_v2@0.5), "
                   "block strings, or an export .json file")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.set_defaults(func=_run)
