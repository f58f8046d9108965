"""Per-layer latency tables measured elsewhere, in Once-for-All's and ProxylessNAS's YAML formats.

Both key a layer by its exact shapes, e.g. OFA's (Samsung Note10)
`expanded_conv-input:12x12x136-output:12x12x136-expand:408-kernel:5-stride:1-idskip:1-se:1-hs:1`
(`expand` = expanded channels) and ProxylessNAS's (Pixel 1)
`expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0`
(`expand` = ratio, no se/hs), plus the stem (`Conv`), head (`Conv_1`, OFA's `AvgPool2D` and
`Conv_2`) and classifier (`Logits`). A network's latency is the sum over its layers; a layer the
table lacks is a ValueError naming its key. Architectures are keyed through the common grammar
(`ArchSpec`, or a space's spec with `to_arch_spec()` and a `resolution`), so any space whose
layers a table holds can use it.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import yaml

from search_spaces.specs import ArchSpec, BlockSpec, LayerSpec

if TYPE_CHECKING:
    from search_spaces.interface import SearchSpace

FORMATS = ("ofa_yaml", "proxyless_yaml")
_STEM = re.compile(r"Conv-input:([0-9]+)x[0-9]+x3-")


def load_layer_table(path: str | os.PathLike[str] | None) -> dict[int, dict[str, float]]:
    """{input resolution: {key: mean ms}} from one YAML table, or from every `*.yaml` in a
    directory (OFA's: one per resolution). Tables stay apart by resolution: the head's keys
    (`Conv_2`, `Logits`) and some small feature maps are the same text at several resolutions
    but were measured in different networks. A file's resolution is its stem's input size."""
    if not path:
        raise ValueError("latency.table: needs the YAML table (a file, or a directory of them)")
    path = Path(path)
    if not path.exists():
        raise ValueError(f"latency.table: {path} does not exist")
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"latency.table: {path} holds no *.yaml table")
    out: dict[int, dict[str, float]] = {}
    for file in files:
        entries = _read_yaml_table(file)
        stems = {int(m.group(1)) for m in map(_STEM.match, entries) if m}
        if len(stems) != 1:
            raise ValueError(f"latency.table: {file}: expected one stem entry 'Conv-input:RxRx3-"
                             f"...' giving the table's resolution, found {len(stems)}")
        res = stems.pop()
        if res in out:
            raise ValueError(f"latency.table: {path}: two tables for resolution {res}")
        out[res] = entries
    return out


def _read_yaml_table(file: Path) -> dict[str, float]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"latency.table: {file} is not a YAML table "
                         f"({type(exc).__name__})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"latency.table: {file}: expected a mapping of layer keys")
    out: dict[str, float] = {}
    for key, entry in data.items():
        mean = entry.get("mean") if isinstance(entry, dict) else None
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) \
                or not math.isfinite(mean) or mean < 0:
            raise ValueError(f"latency.table: {file}: entry {key!r} has no valid 'mean' (ms)")
        out[str(key)] = float(mean)
    return out


def _hw(res: int, channels: int) -> str:
    return f"{res}x{res}x{channels}"


def layer_key(fmt: str, spec: LayerSpec, res: int) -> str:
    """The table key of one layer whose input is `res` x `res`."""
    out_res = math.ceil(res / spec.stride)
    if spec.op == "conv":
        return f"conv-k{spec.kernel}-{_hw(res, spec.in_filters)} (regular convs are not in " \
               "these tables)"
    if spec.has_residual and not (spec.stride == 1 and spec.in_filters == spec.out_filters):
        idskip = "pool"  # a pooled / projected shortcut: not in these tables
    else:
        idskip = "1" if spec.has_residual else "0"
    expand = spec.mid_filters if fmt == "ofa_yaml" else spec.expansion
    key = (f"expanded_conv-input:{_hw(res, spec.in_filters)}-output:"
           f"{_hw(out_res, spec.out_filters)}-expand:{expand}-kernel:{spec.kernel}-"
           f"stride:{spec.stride}-idskip:{idskip}")
    if fmt == "ofa_yaml":
        key += f"-se:{int(spec.se_ratio > 0)}-hs:{int(getattr(spec, 'act', 'relu') == 'hswish')}"
    elif spec.se_ratio > 0 or getattr(spec, "act", "relu") != "relu":
        key += "-se/h-swish (not in ProxylessNAS tables)"
    return key


def network_keys(fmt: str, arch: ArchSpec, resolution: int, *, num_classes: int = 1000,
                 feature_mix: int = 1536) -> list[str]:
    """Every key `arch` at `resolution` sums: stem, layers, head, classifier."""
    res = math.ceil(resolution / arch.stem_stride)
    keys = [f"Conv-input:{_hw(resolution, 3)}-output:{_hw(res, arch.stem_filters)}"]
    for spec in arch.layers():
        keys.append(layer_key(fmt, spec, res))
        res = math.ceil(res / spec.stride)
    last, head = arch.blocks[-1].out_filters, arch.head_filters
    keys.append(f"Conv_1-input:{_hw(res, last)}-output:{_hw(res, head)}")
    if fmt == "ofa_yaml":
        keys += [f"AvgPool2D-input:{_hw(res, head)}-output:1x1x{head}",
                 f"Conv_2-input:1x1x{head}-output:1x1x{feature_mix}",
                 f"Logits-input:1x1x{feature_mix}-output:{num_classes}"]
    else:
        keys.append(f"Logits-input:{_hw(res, head)}-output:{num_classes}")
    return keys


class LayerTablePredictor:
    """Latency = the sum of a network's layer entries in an imported YAML table."""

    def __init__(self, space: SearchSpace[Any], table: str | None, *, fmt: str,
                 feature_mix: int = 1536) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"latency.predictor: {fmt!r} is not one of {', '.join(FORMATS)}")
        self.space, self.fmt, self.path, self.feature_mix = space, fmt, table, int(feature_mix)
        self.tables = load_layer_table(table)
        self._memo: dict[Any, float] = {}
        # a space/table mismatch or a missing layer fails now, not mid-search: every layer of
        # the space where it can list them (OFA), else one sample
        covering = getattr(space, "covering_archs", None)
        for arch in covering() if covering else [space.sample(np.random.default_rng(0))]:
            self.predict(arch)

    def keys(self, arch: Any) -> tuple[int, list[str]]:
        """(input resolution, every key the network sums)."""
        if hasattr(arch, "to_arch_spec"):
            spec, resolution = arch.to_arch_spec(), int(arch.resolution)
        elif isinstance(arch, ArchSpec):
            spec, resolution = arch, int(getattr(self.space, "input_size", 224))
        else:
            raise ValueError(f"latency.predictor: {self.fmt} tables price block-string networks; "
                             f"the {type(arch).__name__} architectures of this space have none")
        return resolution, network_keys(self.fmt, spec, resolution,
                                        num_classes=getattr(self.space, "num_classes", 1000),
                                        feature_mix=self.feature_mix)

    def predict(self, arch: Any) -> float:
        if arch not in self._memo:
            resolution, keys = self.keys(arch)
            entries = self.tables.get(resolution)
            if entries is None:
                raise ValueError(f"latency.table: {self.path} has no table for resolution "
                                 f"{resolution} (it has {sorted(self.tables)})")
            total = 0.0
            for key in keys:
                if key not in entries:
                    raise ValueError(f"latency.table: {self.path} has no entry {key!r}")
                total += entries[key]
            self._memo[arch] = total
        return self._memo[arch]

    def predict_many(self, archs: Sequence[Any]) -> np.ndarray:
        return np.array([self.predict(a) for a in archs], dtype=float)


def arch_from_proxyless_config(data: dict[str, Any]) -> ArchSpec:
    """A ProxylessNAS net config (e.g. proxyless_mobile.json) in the common grammar: one block
    per MBInvertedConvLayer; ZeroLayer blocks (skipped layers) are left out (they cost 0)."""
    blocks = []
    for block in data["blocks"]:
        conv = block["mobile_inverted_conv"]
        if conv["name"] == "ZeroLayer":
            continue
        e = int(conv["expand_ratio"])
        blocks.append(BlockSpec("ir" if e > 1 else "ds", 1, int(conv["kernel_size"]),
                                int(conv["stride"]), e, int(conv["in_channels"]),
                                int(conv["out_channels"]),
                                skip="identity" if block.get("shortcut") else "none"))
    return ArchSpec(tuple(blocks), stem_filters=int(data["first_conv"]["out_channels"]),
                    stem_stride=int(data["first_conv"]["stride"]),
                    head_filters=int(data["feature_mix_layer"]["out_channels"]))


__all__ = ["FORMATS", "LayerTablePredictor", "arch_from_proxyless_config",
           "load_layer_table", "network_keys"]
