"""Does timm build what mnas means by a timm string? Parameter counts and outputs, weights copied.

timm is never an mnas dependency (it would bring torchvision into mnas's environment), so this
runs in an environment of its own (bench/README.md, "timm interoperability"):

    python3.11 -m venv /tmp/timmenv
    /tmp/timmenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm numpy pyyaml
    PYTHONPATH=$PWD /tmp/timmenv/bin/python bench/timm_interop.py [--random 40]

For each architecture: mnas builds it from its spec; timm builds it from `encode_arch(arch,
format="timm")` with its own decoder (`decode_arch_def`) and `EfficientNet` (default channel
rounding, the arch's stem and head widths and stem/head activation; each block's activation from
its own ``n`` token, e.g. ``nr6``). Parameter counts must be equal; then every conv/BN/linear
tensor is copied from mnas to timm (BN running statistics randomised first) and the logits compared
in eval mode, with timm's BatchNorm epsilon set to mnas's 1e-3 (and once left at timm's 1e-5, to
show what the epsilon alone changes). Architectures mnas refuses to write as timm strings are
counted by reason, and for each the string mnas used to write (`_poolskip`, `se` on `cn_`) is built
by timm to show the refusal is real.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import EfficientNet
from torch import nn

from search_spaces import ACTIVATIONS, build_model, count_params, encode_arch, reference_arch
from search_spaces.blockstrings import ACT_TOKENS, timm_problem
from search_spaces.space import MnasNetSpace

OUT = Path(__file__).parent / "results" / "timm_interop.json"
_COPIED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
#: timm's act_layer for the stem and head (the blocks name theirs in the strings).
_TIMM_ACT = {"relu": nn.ReLU, "relu6": nn.ReLU6, "swish": nn.SiLU, "hswish": nn.Hardswish}


def timm_model(strings: list[str], arch: Any, classes: int) -> nn.Module:
    act = _TIMM_ACT[arch.activation]
    return EfficientNet(block_args=decode_arch_def([[s] for s in strings]),
                        stem_size=arch.stem_filters, fix_stem=True,
                        num_features=arch.head_filters, num_classes=classes, act_layer=act)


def _tensors(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _COPIED)]


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Module by module in registration order (both build stem, blocks, head in that order)."""
    a, b = _tensors(src), _tensors(dst)
    if len(a) != len(b):
        raise ValueError(f"{len(a)} vs {len(b)} conv/BN/linear modules")
    with torch.no_grad():
        for x, y in zip(a, b):
            if type(x) is not type(y) and not isinstance(y, type(x)):
                raise ValueError(f"{type(x).__name__} vs {type(y).__name__}")
            for name, t in list(x.named_parameters(recurse=False)) + \
                    list(x.named_buffers(recurse=False)):
                target = getattr(y, name)
                if target.shape != t.shape:
                    raise ValueError(f"{name}: {tuple(t.shape)} vs {tuple(target.shape)}")
                target.copy_(t)


def _randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def compare(arch: Any, size: int, classes: int = 1000, seed: int = 0) -> dict[str, Any]:
    strings = encode_arch(arch, format="timm")
    ours, theirs = build_model(arch, classes).eval(), timm_model(strings, arch, classes).eval()
    row: dict[str, Any] = {"timm": strings, "params_mnas": count_params(ours),
                           "params_timm": count_params(theirs)}
    if row["params_mnas"] != row["params_timm"]:
        row["ok"] = False
        return row
    gen = torch.Generator().manual_seed(seed)
    _randomise_bn(ours, gen)
    copy_weights(ours, theirs)
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.no_grad():
        ref = ours(x)
        eps_1e5 = (theirs(x) - ref).abs().max().item()  # timm's own BatchNorm epsilon
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = 1e-3
        diff = (theirs(x) - ref).abs().max().item()
        old = [old_string(b) for b in arch.blocks]
        if old != strings and all("poolskip" not in t for t in old):  # e.g. cn_ without _skip
            before = timm_model(old, arch, classes).eval()
            for m in before.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eps = 1e-3
            copy_weights(ours, before)
            row["old_string"] = old
            row["old_string_max_abs_diff"] = (before(x) - ref).abs().max().item()
    row.update(max_abs_diff=diff, max_abs_diff_timm_eps=eps_1e5,
               logit_scale=ref.abs().max().item(),
               ok=diff <= 1e-4 * max(1.0, ref.abs().max().item()))
    return row


def old_string(block: Any) -> str:
    """What mnas wrote before the rules: ``_poolskip`` kept, ``se`` on ``cn_``, no ``_skip``."""
    op = {"ir": "ir", "ds": "ds", "conv": "cn"}[block.op]
    text = f"{op}_r{block.repeats}_k{block.kernel}_s{block.stride}"
    text += f"_e{block.expansion}" if block.op != "conv" else ""
    text += f"_c{block.out_filters}" + (f"_se{block.se_ratio:g}" if block.se_ratio else "")
    text += {"identity": "", "none": "_noskip", "pool": "_poolskip"}[block.skip]
    return text + ("" if block.act == "relu" else "_" + ACT_TOKENS[block.act][1])


def with_random_activations(arch: Any, rng: np.random.Generator) -> Any:
    """`arch` with each block's activation (and the stem's and head's) drawn at random."""
    def pick() -> str:
        return str(rng.choice(ACTIVATIONS))

    return arch.with_(blocks=tuple(b.with_(act=pick()) for b in arch.blocks), activation=pick())


def refused(arch: Any, classes: int = 1000) -> dict[str, Any]:
    reasons = [why for b in arch.blocks if (why := timm_problem(b))]
    old = [old_string(b) for b in arch.blocks]
    theirs = timm_model(old, arch, classes)
    return {"reasons": reasons, "old_timm": old, "params_mnas": count_params(build_model(arch)),
            "params_timm_old_string": count_params(theirs)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--random", type=int, default=40, help="random architectures per space")
    p.add_argument("--size", type=int, default=96, help="input size for random architectures")
    args = p.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    refs = {}
    for name, width in [("mnasnet_a1", 1.0), ("mnasnet_a1", 0.5), ("mnasnet_b1", 1.0),
                        ("mnasnet_b1", 0.75), ("mobilenet_v2", 1.0), ("mobilenet_v2", 0.5),
                        ("mobilenet_v2", 1.4), ("efficientnet_b0", 1.0)]:
        refs[f"{name}@{width:g}"] = compare(reference_arch(name, width), 224)
    named = {"semnasnet_100": "mnasnet_a1", "mnasnet_100": "mnasnet_b1",
             "mobilenetv2_100": "mobilenet_v2", "efficientnet_b0": "efficientnet_b0"}
    timm_named = {t: {"timm": count_params(timm.create_model(t, pretrained=False)),
                      "mnas": count_params(build_model(reference_arch(m)))}
                  for t, m in named.items()}
    spaces = {
        "default (pool/identity/none skips)": MnasNetSpace(),
        "timm-expressible (identity/none skips)": MnasNetSpace(skips=("identity", "none")),
        "timm-expressible, random activation per block": MnasNetSpace(skips=("identity", "none")),
    }
    random_rows: dict[str, Any] = {}
    for label, space in spaces.items():
        rng = np.random.default_rng(0)
        rows: list[dict[str, Any]] = []
        reasons: Counter[str] = Counter()
        for i in range(args.random):
            arch = space.sample(rng)
            if "activation" in label:
                arch = with_random_activations(arch, rng)
            if any(timm_problem(b) for b in arch.blocks):
                r = refused(arch)
                reasons.update(w.split(" (")[0] for w in r["reasons"])
                rows.append(dict(r, refused=True, params_differ=r["params_mnas"] !=
                                 r["params_timm_old_string"]))
                continue
            row = compare(arch, args.size, seed=i)
            row["ops"] = sorted({(b.op, b.skip, b.se_ratio > 0) for b in arch.blocks})
            row["activations"] = sorted({b.act for b in arch.blocks} | {arch.activation})
            rows.append(row)
        compared = [r for r in rows if not r.get("refused")]
        random_rows[label] = {
            "sampled": len(rows), "compared": len(compared),
            "equal_params_and_outputs": sum(bool(r["ok"]) for r in compared),
            "refused": len(rows) - len(compared), "refusal_reasons": dict(reasons),
            "refused_whose_old_string_timm_builds_with_other_params":
                sum(r.get("params_differ", False) for r in rows),
            "conv_blocks_with_skip": sum(any(o == "conv" and s == "identity"
                                             for o, s, _ in r["ops"]) for r in compared),
            "conv_blocks_without_skip": sum(any(o == "conv" and s == "none" for o, s, _ in r["ops"])
                                            for r in compared),
            "old_string_differs": [r["old_string_max_abs_diff"] for r in compared
                                   if "old_string_max_abs_diff" in r],
            "with_se": sum(any(se for *_, se in r["ops"]) for r in compared),
            "activations_seen": sorted({a for r in compared for a in r["activations"]}),
            "max_abs_diff": max((r["max_abs_diff"] for r in compared), default=None),
            "max_abs_diff_timm_eps": max((r["max_abs_diff_timm_eps"] for r in compared),
                                         default=None),
            "rows": rows}
    result = {"torch": torch.__version__, "timm": timm.__version__,
              "python": platform.python_version(), "seconds": round(time.time() - started, 1),
              "references": refs, "timm_named_models_params": timm_named,
              "random": random_rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1, default=str))
    print(f"{'architecture':<22} {'params mnas':>12} {'params timm':>12} {'max |diff|':>11} "
          f"{'(timm eps)':>11}")
    for name, r in refs.items():
        print(f"{name:<22} {r['params_mnas']:>12,} {r['params_timm']:>12,} "
              f"{r.get('max_abs_diff', float('nan')):>11.2e} "
              f"{r.get('max_abs_diff_timm_eps', float('nan')):>11.2e}")
    for t, c in timm_named.items():
        print(f"timm.create_model({t!r}): {c['timm']:,} params; mnas reference {c['mnas']:,}")
    for label, r in random_rows.items():
        print(f"{label}: {r['sampled']} sampled, {r['compared']} compared, "
              f"{r['equal_params_and_outputs']} equal (max |diff| {r['max_abs_diff']}), "
              f"{r['refused']} refused {r['refusal_reasons']} "
              f"({r['refused_whose_old_string_timm_builds_with_other_params']} of them: the old "
              "string gives timm other parameter counts); conv blocks with/without skip "
              f"{r['conv_blocks_with_skip']}/{r['conv_blocks_without_skip']}, SE {r['with_se']}")
    print(f"wrote {OUT}")
    bad = [n for n, r in refs.items() if not r["ok"]] + [
        label for label, r in random_rows.items()
        if r["equal_params_and_outputs"] != r["compared"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
