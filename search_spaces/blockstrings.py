"""Two-way codec between `ArchSpec` and block strings.

Two formats:
- ``tf`` (default): the official MnasNet grammar, ``r2_k3_s22_e6_i16_o24_se0.25``, plus flag
  tokens of our own: ``conv`` (regular convolution instead of MBConv), ``poolskip`` (pooling
  skip) and one per non-ReLU activation, named after it (``swish``: EfficientNet's MBConv).
  Official strings never contain them, so they parse and encode exactly as before.
- ``timm``: ``ir_r2_k3_s2_e6_c24_se0.25`` (``ds_`` for depthwise-separable, ``cn_`` for regular
  conv); input widths are chained from the stem; activations as timm's ``n`` tokens (``nsw``,
  ``nr6``). Read and written as timm's decoder and EfficientNetBuilder build them
  (`timm_problem`): ``cn_`` has a residual only with ``_skip``; ``ir_..._e1`` keeps a 1x1
  expansion conv (refused: mnas's e1 block is ``ds_``); blocks timm would build differently (a
  shape-changing pooling skip, SE on ``cn_``, widths timm rounds to multiples of 8, SE widths timm
  rounds instead of truncating) are refused naming the block.

Every token is split at its first ASCII digit into key and value, so token order does not matter.
Any malformed text raises ``ValueError`` naming the string and the offending token.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Iterable, Sequence

from .specs import ACTIVATIONS, ArchSpec, BlockSpec, round_filters

_SPLIT = re.compile(r"([^0-9]*)(.*)", re.DOTALL)
_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"[0-9]+(\.[0-9]+)?")
_FLAGS_SKIP = {"noskip": "none", "poolskip": "pool"}
_TIMM_OPS = {"ir": "ir", "ds": "ds", "cn": "conv"}
_TIMM_NAMES = {v: k for k, v in _TIMM_OPS.items()}
#: The one table of activation tokens: activation -> (tf flag, timm token). ReLU is the default
#: and is written only in timm form, on a ReLU block of a network whose `act_layer` is not ReLU.
ACT_TOKENS = {"relu": ("relu", "nre"), "swish": ("swish", "nsw"), "hswish": ("hs", "nhs"),
              "relu6": ("relu6", "nr6")}
assert set(ACT_TOKENS) == set(ACTIVATIONS), "every activation needs its tokens"


def _fail(text: str, token: str, why: str) -> ValueError:
    return ValueError(f"block string {text!r}: token {token!r}: {why}")


def _tokens(text: str, required: Sequence[str], allowed: Iterable[str],
            label: str | None = None) -> dict[str, tuple[str, str]]:
    """Split a block string into {key: (value, token)}; reject unknown, repeated, missing keys.
    `label` is the whole string for error messages when `text` is only its tail."""
    label = text if label is None else label
    if not isinstance(text, str):
        raise ValueError(f"block string {text!r}: expected text, got {type(text).__name__}")
    if not text:
        raise ValueError(f"block string {label!r}: empty")
    allowed = set(allowed)
    found: dict[str, tuple[str, str]] = {}
    for token in text.split("_"):
        match = _SPLIT.fullmatch(token)
        key, value = (match.group(1), match.group(2)) if match else (token, "")
        if token in allowed:  # a flag with a digit in its name (relu6, timm's nr6)
            key, value = token, ""
        if key not in allowed and key.rstrip("-+.") in allowed:
            raise _fail(label, token, "expected a positive number after the key")
        if key not in allowed:
            raise _fail(label, token, f"unknown token (expected keys {sorted(allowed)})")
        if key in found:
            raise _fail(label, token, f"key {key!r} given twice")
        found[key] = (value, token)
    for key in required:
        if key not in found:
            raise _fail(label, key, f"missing (a block needs {', '.join(required)})")
    return found


def _int(text: str, tokens: dict[str, tuple[str, str]], key: str, minimum: int = 1) -> int:
    value, token = tokens[key]
    if not _INT.fullmatch(value):
        raise _fail(text, token, "expected a whole number")
    try:
        number = int(value)
    except ValueError:  # Python refuses to parse integers of thousands of digits
        raise _fail(text, token, "number too long") from None
    if number < minimum:
        raise _fail(text, token, f"must be at least {minimum}")
    return number


def _se(text: str, tokens: dict[str, tuple[str, str]]) -> float:
    if "se" not in tokens:
        return 0.0
    value, token = tokens["se"]
    if not _FLOAT.fullmatch(value) or not 0.0 <= float(value) <= 1.0:
        raise _fail(text, token, "squeeze-excitation ratio must be a number in [0, 1]")
    return float(value)


def _flag(text: str, tokens: dict[str, tuple[str, str]], key: str) -> bool:
    if key not in tokens:
        return False
    value, token = tokens[key]
    if value:
        raise _fail(text, token, f"flag {key!r} takes no value")
    return True


def _skip(text: str, tokens: dict[str, tuple[str, str]]) -> str:
    flags = [k for k in _FLAGS_SKIP if _flag(text, tokens, k)]
    if len(flags) > 1:
        raise _fail(text, tokens[flags[1]][1], "noskip and poolskip exclude each other")
    return _FLAGS_SKIP[flags[0]] if flags else "identity"


def _act(text: str, tokens: dict[str, tuple[str, str]], column: int,
         default: str = "relu") -> str:
    """The activation named by a flag token (column 0: tf names, 1: timm's), `default` without
    one."""
    found = [act for act, names in ACT_TOKENS.items() if _flag(text, tokens, names[column])]
    if len(found) > 1:
        raise _fail(text, tokens[ACT_TOKENS[found[1]][column]][1],
                    "a block takes one activation token")
    return found[0] if found else default


def _act_text(act: str, column: int, default: str = "relu") -> str:
    """The block's activation token; none for ReLU where the network's default is ReLU too."""
    return "" if act == "relu" == default else "_" + ACT_TOKENS[act][column]


def _block(text: str, **fields: Any) -> BlockSpec:
    """The spec of the parsed fields; BlockSpec checks their types and ranges itself."""
    try:
        return BlockSpec(**fields)
    except ValueError as exc:
        raise ValueError(f"block string {text!r}: {exc}") from None


def decode_block(text: str) -> BlockSpec:
    """Parse one official-grammar block string (with our `conv` / `poolskip` flags)."""
    tokens = _tokens(text, ("r", "k", "s", "e", "i", "o"),
                     ("r", "k", "s", "e", "i", "o", "se", "noskip", "poolskip", "conv",
                      *(names[0] for names in ACT_TOKENS.values())))
    stride_value, stride_token = tokens["s"]
    if stride_value not in ("11", "22"):
        raise _fail(text, stride_token, "stride is written as two equal digits: s11 or s22")
    expansion = _int(text, tokens, "e")
    kernel = _int(text, tokens, "k")
    if kernel % 2 == 0:
        raise _fail(text, tokens["k"][1], "kernel must be odd")
    conv = _flag(text, tokens, "conv")
    if conv and expansion != 1:
        raise _fail(text, tokens["e"][1], "a regular conv ('conv') takes expansion e1")
    return _block(
        text,
        op="conv" if conv else ("ds" if expansion == 1 else "ir"),
        repeats=_int(text, tokens, "r"),
        kernel=kernel,
        stride=int(stride_value[0]),
        expansion=expansion,
        in_filters=_int(text, tokens, "i"),
        out_filters=_int(text, tokens, "o"),
        se_ratio=_se(text, tokens),
        skip=_skip(text, tokens),
        act=_act(text, tokens, 0),
    )


def _se_text(ratio: float) -> str:
    """Python's shortest exact text (``0.25`` as the official code writes it), never in
    exponent form, so every ratio decodes back to the identical float."""
    return f"_se{Decimal(repr(float(ratio))):f}" if 0.0 < ratio <= 1.0 else ""


def _skip_text(skip: str) -> str:
    return {"identity": "", "none": "_noskip", "pool": "_poolskip"}[skip]


def encode_block(block: BlockSpec) -> str:
    """Official order: r k s e i o, then se (when > 0), then noskip/poolskip, then conv, then the
    activation (when not ReLU)."""
    s = block.stride
    text = (f"r{block.repeats}_k{block.kernel}_s{s}{s}_e{block.expansion}"
            f"_i{block.in_filters}_o{block.out_filters}")
    text += _se_text(block.se_ratio) + _skip_text(block.skip)
    return text + ("_conv" if block.op == "conv" else "") + _act_text(block.act, 0)


def _timm_layer_problem(op: str, i: int, e: int, o: int, se: float) -> str | None:
    """What timm builds differently for one layer (input width `i`), or None."""
    if round_filters(o) != o:
        return f"timm's builder rounds output width {o} to {round_filters(o)} (multiples of 8)"
    if op == "ir" and round_filters(i * e) != i * e:
        return (f"timm rounds the expanded width {i}x{e}={i * e} to {round_filters(i * e)} "
                "(multiples of 8)")
    if se > 0 and op != "conv":
        mid = i * e
        timm_se = round(mid * (se / e))  # EfficientNetBuilder: se over block input, rounded
        ours = max(1, int(i * se))
        if timm_se != ours:
            return (f"timm's SE squeezes {i}x{se:g} to {timm_se} channels (rounded), mnas and "
                    f"TF to {ours} (truncated)")
    return None


def timm_problem(block: BlockSpec) -> str | None:
    """Why timm (decoder + EfficientNetBuilder, default channel rounding) would build `block`
    differently from mnas, or None when both build the same layers."""
    if block.op == "conv" and block.se_ratio > 0:
        return "timm ignores se on cn_ blocks"
    if block.skip == "pool" and (block.stride > 1 or block.in_filters != block.out_filters):
        return "timm has no pooling skip (it ignores 'poolskip')"
    widths = [block.in_filters] + [block.out_filters] * (block.repeats > 1)
    for i in widths:
        why = _timm_layer_problem(block.op, i, block.expansion, block.out_filters,
                                  block.se_ratio)
        if why:
            return why
    return None


def _timm_refuse(text: str, block: BlockSpec) -> BlockSpec:
    why = timm_problem(block)
    if why:
        raise ValueError(f"block string {text!r}: {why}; mnas will not read it as another "
                         "network than timm builds")
    return block


def decode_timm_block(text: str, in_filters: int, activation: str = "relu") -> BlockSpec:
    """Parse a timm-style block string as timm builds it; `in_filters` comes from the previous
    block, the activation from an ``n`` token or else the network's (timm's `act_layer`).
    ``cn_`` has a residual only with ``_skip``; ``ir_``/``ds_`` unless ``_noskip``."""
    head, _, rest = text.partition("_") if isinstance(text, str) else ("", "", "")
    if head not in _TIMM_OPS:
        raise ValueError(
            f"block string {text!r}: token {head!r}: expected op prefix ir_, ds_ or cn_")
    op = _TIMM_OPS[head]
    required = ("r", "k", "s", "e", "c") if op == "ir" else ("r", "k", "s", "c")
    tokens = _tokens(rest, required, ("r", "k", "s", "e", "c", "se", "noskip", "skip", "poolskip",
                                      *(names[1] for names in ACT_TOKENS.values())), text)
    if "poolskip" in tokens:
        raise _fail(text, tokens["poolskip"][1], "timm ignores 'poolskip' (it has no pooling "
                    "skip); write the block without it")
    stride_value, stride_token = tokens["s"]
    if stride_value not in ("1", "2"):
        raise _fail(text, stride_token, "stride must be s1 or s2")
    expansion = _int(text, tokens, "e") if "e" in tokens else 1
    if op != "ir" and expansion != 1:
        raise _fail(text, tokens["e"][1], f"{head}_ blocks take expansion e1")
    if op == "ir" and expansion == 1:
        raise _fail(text, tokens["e"][1], "timm builds ir_ with e1 with a 1x1 expansion conv, "
                    "a block mnas does not have (its depthwise-separable block is ds_)")
    if op == "conv" and "se" in tokens:
        raise _fail(text, tokens["se"][1], "timm ignores se on cn_ blocks; write it without se")
    kernel = _int(text, tokens, "k")
    if kernel % 2 == 0:
        raise _fail(text, tokens["k"][1], "kernel must be odd")
    skip, forced = _flag(text, tokens, "noskip"), _flag(text, tokens, "skip")
    if skip and forced:
        raise _fail(text, tokens["skip"][1], "skip and noskip exclude each other")
    residual = forced if op == "conv" else not skip
    return _timm_refuse(text, _block(
        text, op=op, repeats=_int(text, tokens, "r"), kernel=kernel, stride=int(stride_value),
        expansion=expansion, in_filters=in_filters, out_filters=_int(text, tokens, "c"),
        se_ratio=_se(text, tokens), skip="identity" if residual else "none",
        act=_act(text, tokens, 1, activation)))


def encode_timm_block(block: BlockSpec, activation: str = "relu") -> str:
    """The timm string timm builds into the same layers; ValueError naming the block when
    there is none (`timm_problem`). A pooling skip that changes no shape is an identity. A
    block without an ``n`` token takes the network's `activation` in timm, so every block but a
    ReLU one in a ReLU network names its own."""
    why = timm_problem(block)
    if why:
        raise ValueError(f"block {encode_block(block)!r}: {why}, so no timm string builds it")
    text = f"{_TIMM_NAMES[block.op]}_r{block.repeats}_k{block.kernel}_s{block.stride}"
    if block.op != "conv":  # timm writes ds blocks with e1 too (ds_r1_k3_s1_e1_c16_noskip)
        text += f"_e{block.expansion}"
    text += f"_c{block.out_filters}" + _se_text(block.se_ratio)
    if block.op == "conv":  # timm's cn_ adds its residual only when told
        text += "" if block.skip == "none" else "_skip"
    else:
        text += "_noskip" if block.skip == "none" else ""
    return text + _act_text(block.act, 1, activation)


def _arch(blocks: list[BlockSpec], strings: Sequence[str], **kwargs: Any) -> ArchSpec:
    """ArchSpec checks the stem/head settings itself (a ValueError names the string)."""
    try:
        return ArchSpec(blocks=tuple(blocks), **kwargs)
    except ValueError as exc:
        raise ValueError(f"block strings {list(strings)!r}: {exc}") from None


def _check_list(strings: Sequence[str]) -> None:
    if isinstance(strings, str) or not isinstance(strings, (list, tuple)):
        raise ValueError(f"block strings must be a list of strings, got {strings!r}")
    if not strings:
        raise ValueError("block strings: empty list (an architecture needs at least one block)")


def decode_arch(strings: Sequence[str], *, format: str = "tf", stem_filters: int | None = None,
                stem_stride: int = 2, head_filters: int = 1280, dropout: float = 0.2,
                activation: str | None = None) -> ArchSpec:
    """Block strings -> ArchSpec. The stem width defaults to the first block's input filters
    (tf) or 32 (timm, whose strings carry no input widths); the stem and head activation to the
    one every block uses (EfficientNet's swish), else ReLU. A timm block without an activation
    token takes `activation` as timm's `act_layer` does (tf blocks: ReLU)."""
    _check_list(strings)
    extra = dict(stem_stride=stem_stride, head_filters=head_filters, dropout=dropout)
    if format == "tf":
        blocks = [decode_block(s) for s in strings]
        stem = blocks[0].in_filters if stem_filters is None else stem_filters
        if stem != blocks[0].in_filters:
            blocks[0] = _tf_first_block(strings[0], blocks[0], stem)
    elif format == "timm":
        width = 32 if stem_filters is None else stem_filters
        if round_filters(width) != width:
            raise ValueError(f"block strings {list(strings)!r}: stem_filters {width}: timm's "
                             f"builder rounds the stem to {round_filters(width)} (multiples of 8)")
        blocks = []
        for text in strings:
            blocks.append(decode_timm_block(text, width, activation or "relu"))
            width = blocks[-1].out_filters
        stem = 32 if stem_filters is None else stem_filters
    else:
        raise ValueError(f"unknown block-string format {format!r} (expected 'tf' or 'timm')")
    if activation is None:
        acts = {b.act for b in blocks}
        activation = acts.pop() if len(acts) == 1 else "relu"
    return _arch(blocks, strings, stem_filters=stem, activation=activation, **extra)


def _tf_first_block(text: str, block: BlockSpec, stem: int) -> BlockSpec:
    """TF's model code when the stem differs from the first string's `i` (mnasnet_small: stem
    8, ``r1_k3_s11_e1_i16_o8``): layers take the width they receive; the string's `i` only
    sizes the expansion and SE and decides the identity skip (``i != o``: no skip). We read
    such a block as TF builds it when `i` sizes nothing (e1, no SE), else refuse."""
    if block.expansion != 1 or block.se_ratio > 0 or block.op == "conv":
        raise ValueError(f"block string {text!r}: the stem gives {stem} filters but the block "
                         f"says i{block.in_filters}, which TF would use to size its expansion or "
                         "SE; mnas cannot build that network (give stem_filters equal to i)")
    first = next(block.layers())
    if not first.has_residual and block.skip != "none":
        block = block.with_(skip="none")  # TF: no skip, decided on the string's i != o
    elif first.has_residual and (block.stride != 1 or stem != block.out_filters):
        raise ValueError(f"block string {text!r}: TF would add a skip between {stem} and "
                         f"{block.out_filters} filters; give stem_filters equal to i")
    return block.with_(in_filters=stem)


def encode_arch(arch: ArchSpec, *, format: str = "tf") -> list[str]:
    """ArchSpec -> block strings in the official (`tf`) or `timm` form."""
    if format == "tf":
        return [encode_block(b) for b in arch.blocks]
    if format == "timm":
        if round_filters(arch.stem_filters) != arch.stem_filters:
            raise ValueError(f"stem_filters {arch.stem_filters}: timm's builder rounds the stem "
                             f"to {round_filters(arch.stem_filters)}, so no timm model has it")
        return [encode_timm_block(b, arch.activation) for b in arch.blocks]
    raise ValueError(f"unknown block-string format {format!r} (expected 'tf' or 'timm')")
