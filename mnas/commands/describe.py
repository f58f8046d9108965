"""`mnas describe`: the block table, parameters and multiply-adds of an architecture."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from search_spaces import (ArchSpec, build_model, count_macs, count_params, decode_arch,
                           reference_arch, reference_names)

#: Keys a block string can start with (official and timm forms).
_BLOCK_KEYS = frozenset({"r", "k", "s", "e", "i", "o", "se", "noskip", "poolskip", "conv", "ir",
                         "ds", "cn"})


def resolve_arch(text: str | list[str]) -> ArchSpec:
    """A reference name (optionally `name@width`, e.g. `mobilenet_v2@0.5`), block strings
    (comma- or space-separated, official or timm form), or an `mnas export --format json` file."""
    if isinstance(text, list):
        text = " ".join(text)
    text = text.strip()
    if text.endswith(".json") and Path(text).exists():
        return _arch_from_json(Path(text))
    name, _, width = text.partition("@")
    if name in reference_names():
        try:
            scale = float(width) if width else 1.0
        except ValueError:
            raise ValueError(f"{text!r}: width after '@' must be a number") from None
        return reference_arch(name, scale)
    if text.endswith(".json"):
        raise FileNotFoundError(f"{text}: no such file")
    strings = [s for s in text.replace(",", " ").split() if s]
    first_key = re.match(r"[^0-9_]*", strings[0]).group() if strings else ""
    if first_key not in _BLOCK_KEYS:  # e.g. a misspelt reference name, not a block string
        raise ValueError(f"{text!r} is neither a reference name ({', '.join(reference_names())}), "
                         "block strings, nor an existing export .json file")
    fmt = "timm" if strings[0].split("_", 1)[0] in ("ir", "ds", "cn") else "tf"
    return decode_arch(strings, format=fmt)


def _arch_from_json(path: Path) -> ArchSpec:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    entry = data[0] if isinstance(data, list) and data else data
    if not isinstance(entry, dict) or "blocks" not in entry:
        raise ValueError(f"{path}: expected an object (or list of objects) with 'blocks'")
    extra = {k: entry[k] for k in ("stem_filters", "stem_stride", "head_filters", "dropout")
             if k in entry}
    return decode_arch(entry["blocks"], format=entry.get("format", "tf"), **extra)


def _table_rows(arch: ArchSpec, input_size: int) -> list[tuple[str, ...]]:
    """Header, stem, one row per block (with its output resolution), head."""
    res = -(-input_size // arch.stem_stride)  # 'same' padding: strided convs round up
    rows = [("block", "op", "k", "s", "e", "se", "skip", "r", "in", "out", "out res"),
            ("stem", "conv", "3", str(arch.stem_stride), "-", "-", "-", "1", "3",
             str(arch.stem_filters), f"{res}x{res}")]
    for i, b in enumerate(arch.blocks):
        res = -(-res // b.stride)  # only a block's first layer strides
        rows.append((str(i + 1), b.op, str(b.kernel), str(b.stride), str(b.expansion),
                     f"{b.se_ratio:g}", b.skip, str(b.repeats), str(b.in_filters),
                     str(b.out_filters), f"{res}x{res}"))
    rows.append(("head", "conv1x1", "1", "1", "-", "-", "-", "1", str(arch.blocks[-1].out_filters),
                 str(arch.head_filters), "1x1"))
    return rows


def describe_table(arch: ArchSpec, input_size: int, num_classes: int) -> str:
    """A human-readable block table with parameters and multiply-adds."""
    rows = _table_rows(arch, input_size)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]
    model = build_model(arch, num_classes=num_classes)
    params, macs = count_params(model), count_macs(model, input_size)
    lines.append(f"input {input_size}x{input_size}, {num_classes} classes: "
                 f"{params:,} parameters, {macs / 1e6:,.1f}M multiply-adds")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    if args.input_size < 1 or args.num_classes < 1:
        raise ValueError("--input-size and --num-classes must be positive")
    print(describe_table(resolve_arch(args.arch), args.input_size, args.num_classes))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("describe", help="print an architecture's block table, params and MACs")
    p.add_argument("arch", nargs="+", help="reference name (e.g. mnasnet_a1, mobilenet_v2@0.5), "
                   "block strings, or an export .json file")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.set_defaults(func=_run)
