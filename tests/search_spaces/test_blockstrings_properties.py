"""Property tests for the block-string codec.

Any text either raises ValueError or decodes to a spec that encodes and decodes to the same spec
(never another exception), and every valid spec encodes to text that decodes back to it, in both
formats. Example counts are modest so this file runs in a few seconds.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_spaces import (ACTIVATIONS, ArchSpec, BlockSpec, decode_arch, decode_block,
                           encode_arch, encode_block)
from search_spaces.blockstrings import timm_problem
from search_spaces.specs import round_filters

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Plausible pieces: valid tokens, near misses, and junk, in both grammars.
TOKENS = st.sampled_from([
    "r1", "r2", "r0", "r01", "k3", "k5", "k4", "k", "s11", "s22", "s2", "s1", "s12", "e1", "e6",
    "e0", "i16", "i32", "i-16", "o16", "o24", "o0", "c16", "c24", "se0.25", "se0", "se1", "se1.5",
    "se.5", "se0.25e2", "noskip", "poolskip", "conv", "noskip1", "ir", "ds", "cn", "", "x", "_",
    "9", "é3", "s٣٣", "r1\n", "relu", "relu6", "relu7", "swish", "hs", "nre", "nr6", "nr5", "nsw",
    "skip",
])
JUNK_SOUP = st.lists(TOKENS, min_size=0, max_size=10).map("_".join)


@st.composite
def _near_valid(draw: st.DrawFn, fmt: str) -> str:
    """A shuffled block with plausible values, sometimes mutated, so that a good share of the
    soup decodes and the round-trip branch is exercised too."""
    tf = fmt == "tf"
    parts = [draw(st.sampled_from(["r1", "r2", "r4"])), draw(st.sampled_from(["k3", "k5"])),
             draw(st.sampled_from(["s11", "s22"] if tf else ["s1", "s2"])),
             draw(st.sampled_from(["e1", "e3", "e6"]))]
    parts += [draw(st.sampled_from(["i16", "i16", "i16", "i32"])), "o16"] if tf else ["c16"]
    parts += draw(st.lists(st.sampled_from(["se0.25", "noskip", "poolskip", "conv", "se1",
                                            "relu6" if tf else "nr6", "swish" if tf else "nsw"]),
                           max_size=2, unique=True))
    parts += draw(st.lists(TOKENS, max_size=1))  # occasional junk or duplicate key
    parts = draw(st.permutations(parts))
    prefix = [] if tf else [draw(st.sampled_from(["ir", "ds", "cn"]))]
    return "_".join(prefix + list(parts))


def soup(fmt: str) -> st.SearchStrategy[str]:
    return st.one_of(JUNK_SOUP, _near_valid(fmt), _near_valid(fmt))  # 2/3 near-valid


def soup_lists(min_size: int = 1, max_size: int = 3) -> st.SearchStrategy[tuple[str, list[str]]]:
    """(format, block strings) with the soup drawn for that format."""
    return st.sampled_from(["tf", "timm"]).flatmap(
        lambda fmt: st.tuples(st.just(fmt), st.lists(soup(fmt), min_size=min_size,
                                                     max_size=max_size)))


def _check_text_list(strings: list[str], fmt: str) -> None:
    try:
        arch = decode_arch(strings, format=fmt)
    except ValueError:
        return
    again = decode_arch(encode_arch(arch, format=fmt), format=fmt, stem_filters=arch.stem_filters)
    assert again == arch
    # Either format can carry any decoded architecture.
    if fmt == "timm":
        assert decode_arch(encode_arch(arch, format="tf"), format="tf",
                           stem_filters=arch.stem_filters) == arch
    else:
        _check_timm(arch)


@FAST
@given(st.lists(st.text(max_size=40), max_size=4), st.sampled_from(["tf", "timm"]))
def test_arbitrary_text_raises_value_error_or_round_trips(strings: list[str], fmt: str) -> None:
    _check_text_list(strings, fmt)


@FAST
@given(soup_lists())
def test_token_soup_raises_value_error_or_round_trips(case: tuple[str, list[str]]) -> None:
    fmt, strings = case
    _check_text_list(strings, fmt)


def _decodes(strings: list[str], fmt: str) -> bool:
    try:
        decode_arch(strings, format=fmt)
    except ValueError:
        return False
    return True


def test_soup_reaches_the_round_trip_branch() -> None:
    """The soup is not all junk: it yields decodable multi-block lists in both formats."""
    hits: set[str] = set()

    @settings(max_examples=200, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(soup_lists(min_size=2, max_size=2))
    def collect(case: tuple[str, list[str]]) -> None:
        fmt, strings = case
        if _decodes(strings, fmt):
            hits.add(fmt)

    collect()
    assert hits == {"tf", "timm"}


@FAST
@given(st.one_of(soup("tf"), soup("timm")))
def test_single_block_soup(text: str) -> None:
    try:
        block = decode_block(text)
    except ValueError:
        return
    assert decode_block(encode_block(block)) == block


# -- generated valid specs ----------------------------------------------------------------------
WIDTHS = st.integers(min_value=1, max_value=2048)
SE = st.one_of(st.just(0.0), st.just(0.25),
               st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_subnormal=True))


@st.composite
def blocks(draw: st.DrawFn, in_filters: int | None = None,
           widths: st.SearchStrategy[int] = WIDTHS) -> BlockSpec:
    op = draw(st.sampled_from(["conv", "ds", "ir"]))
    return BlockSpec(
        op=op, repeats=draw(st.integers(1, 8)), kernel=draw(st.sampled_from([1, 3, 5, 7, 9])),
        stride=draw(st.sampled_from([1, 2])),
        expansion=draw(st.integers(2, 12)) if op == "ir" else 1,
        in_filters=draw(widths) if in_filters is None else in_filters,
        out_filters=draw(widths), se_ratio=draw(SE),
        skip=draw(st.sampled_from(["identity", "pool", "none"])),
        act=draw(st.sampled_from(ACTIVATIONS)))


@st.composite
def archs(draw: st.DrawFn, widths: st.SearchStrategy[int] = WIDTHS) -> ArchSpec:
    width = draw(widths)
    out = []
    for _ in range(draw(st.integers(1, 8))):
        out.append(draw(blocks(in_filters=width, widths=widths)))
        width = out[-1].out_filters
    if draw(st.booleans()):  # one activation throughout (EfficientNet, MobileNetV2) or mixed
        out = [b.with_(act=out[0].act) for b in out]
    acts = {b.act for b in out}  # strings carry no stem/head activation: decode's rule
    return ArchSpec(tuple(out), stem_filters=out[0].in_filters,
                    stem_stride=draw(st.sampled_from([1, 2])),
                    activation=acts.pop() if len(acts) == 1 else "relu")


@FAST
@given(blocks())
def test_valid_block_round_trips_to_identical_text(block: BlockSpec) -> None:
    text = encode_block(block)
    assert decode_block(text) == block
    assert encode_block(decode_block(text)) == text


def timm_view(arch: ArchSpec) -> ArchSpec:
    """`arch` as timm reads it back: a pooling skip that changes no shape is an identity."""
    return arch.with_(blocks=tuple(
        b.with_(skip="identity") if b.skip == "pool" and b.stride == 1
        and b.in_filters == b.out_filters else b for b in arch.blocks))


def _check_timm(arch: ArchSpec) -> None:
    """timm strings exist exactly for architectures timm builds identically, and read back as
    the same network; otherwise one line naming the block (or the stem)."""
    stem = dict(stem_filters=arch.stem_filters, stem_stride=arch.stem_stride)
    expressible = round_filters(arch.stem_filters) == arch.stem_filters and \
        all(timm_problem(b) is None for b in arch.blocks)
    try:
        text = encode_arch(arch, format="timm")
    except ValueError as exc:
        assert not expressible and len(str(exc).splitlines()) == 1
        assert str(exc).startswith(("block '", "stem_filters"))
        return
    assert expressible
    assert decode_arch(text, format="timm", **stem) == timm_view(arch)
    assert encode_arch(decode_arch(text, format="timm", **stem), format="timm") == text


@FAST
@given(archs())
def test_valid_arch_round_trips_in_both_formats(arch: ArchSpec) -> None:
    stem = dict(stem_filters=arch.stem_filters, stem_stride=arch.stem_stride)
    text = encode_arch(arch)
    assert decode_arch(text, **stem) == arch
    assert encode_arch(decode_arch(text, **stem)) == text
    # tf strings carry the stem width themselves.
    assert decode_arch(encode_arch(arch), stem_stride=arch.stem_stride) == arch
    _check_timm(arch)


@FAST
@given(archs(widths=st.integers(1, 80).map(lambda w: 8 * w)), st.sampled_from(ACTIVATIONS))
def test_timm_expressible_archs_round_trip(arch: ArchSpec, act_layer: str) -> None:
    _check_timm(arch)
    # Built by timm with any `act_layer` (the stem's and head's), every block keeps its own.
    arch = arch.with_(activation=act_layer)
    if all(timm_problem(b) is None for b in arch.blocks):
        text = encode_arch(arch, format="timm")
        assert decode_arch(text, format="timm", activation=act_layer,
                           stem_filters=arch.stem_filters,
                           stem_stride=arch.stem_stride) == timm_view(arch)
