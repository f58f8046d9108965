"""Imported per-layer tables (OFA and ProxylessNAS YAML): sums over known keys, per-resolution
tables, one-line errors naming a missing key, a space/table mismatch; the published checks when
the shared data is present."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from latency import create_predictor
from latency.layer_tables import arch_from_proxyless_config, load_layer_table, network_keys
from search_spaces import ArchSpec, BlockSpec, NasBench201Space, OfaArch, OfaMobileNetV3Space

SHARED = Path(os.environ.get("MNAS_SHARED", Path(__file__).resolve().parents[3] / "shared"))
DATA = SHARED / "data" / "nas-benchmarks"
ONE = OfaMobileNetV3Space(kernels=(3,), expands=(3,), depths=(2,), resolutions=(160, 176))
TUTORIAL = OfaArch(192, (2, 2, 3, 4, 3), (5, 3, 5, 3, 7, 7, 3, 5, 5, 7, 3, 3, 3, 5),
                   (3, 3, 4, 4, 6, 3, 4, 4, 4, 4, 3, 6, 6, 6))


def write_ofa_tables(folder: Path, space=ONE, drop: str | None = None) -> dict[int, float]:
    """One table per resolution holding exactly the keys of the space's one network per
    resolution, each entry 0.5 ms + a per-key amount; returns the expected sums."""
    folder.mkdir(exist_ok=True)
    sums = {}
    for r in space.resolutions:
        arch = OfaArch(r, (2,) * 5, (3,) * 10, (3,) * 10)
        keys = network_keys("ofa_yaml", arch.to_arch_spec(), r)
        table = {k: {"mean": 0.5 + i / 100, "std": 0.0, "count": 3} for i, k in enumerate(keys)
                 if k != drop}
        (folder / f"{r}_lookup_table.yaml").write_text(yaml.safe_dump(table))
        sums[r] = sum(0.5 + i / 100 for i in range(len(keys)))
    return sums


def test_ofa_table_sums_every_layer_at_its_resolution(tmp_path):
    sums = write_ofa_tables(tmp_path / "t")
    p = create_predictor("ofa_yaml", space=ONE, table=str(tmp_path / "t"))
    for r, total in sums.items():
        arch = OfaArch(r, (2,) * 5, (3,) * 10, (3,) * 10)
        assert p.predict(arch) == pytest.approx(total)
        keys = network_keys("ofa_yaml", arch.to_arch_spec(), r)
        assert keys[0] == f"Conv-input:{r}x{r}x3-output:{r // 2}x{r // 2}x24"
        assert keys[1].endswith("-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0")
        assert len(keys) == 1 + 1 + 10 + 4  # stem, first layer, 10 layers, head 4
    assert list(p.predict_many([OfaArch(160, (2,) * 5, (3,) * 10, (3,) * 10)])) == \
        [pytest.approx(sums[160])]


def test_missing_layer_is_one_line_naming_its_key(tmp_path):
    arch = OfaArch(160, (2,) * 5, (3,) * 10, (3,) * 10)
    victim = network_keys("ofa_yaml", arch.to_arch_spec(), 160)[5]
    write_ofa_tables(tmp_path / "t", drop=victim)
    with pytest.raises(ValueError) as err:
        create_predictor("ofa_yaml", space=ONE, table=str(tmp_path / "t")).predict(arch)
    assert str(err.value).startswith("latency.table: ") and repr(victim) in str(err.value)
    assert "\n" not in str(err.value)


def test_resolution_without_a_table(tmp_path):
    write_ofa_tables(tmp_path / "t", space=OfaMobileNetV3Space(kernels=(3,), expands=(3,),
                                                               depths=(2,), resolutions=(160,)))
    with pytest.raises(ValueError, match=r"no table for resolution 176 \(it has \[160\]\)"):
        p = create_predictor("ofa_yaml", space=ONE, table=str(tmp_path / "t"))
        p.predict(OfaArch(176, (2,) * 5, (3,) * 10, (3,) * 10))


@pytest.mark.parametrize("content, fragment", [
    (None, "does not exist"),
    ("- a\n- b\n", "expected a mapping of layer keys"),
    ("Conv-input:9x9x3-output:5x5x24: {count: 1}\n", "has no valid 'mean'"),
    ("Logits-input:1x1x1536-output:1000: {mean: 1.0}\n", "expected one stem entry"),
])
def test_bad_table_files(tmp_path, content, fragment):
    path = tmp_path / "t.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match="latency.table: ") as err:
        load_layer_table(path)
    assert fragment in str(err.value)


def test_space_table_mismatch_and_unknown_kwargs(tmp_path):
    write_ofa_tables(tmp_path / "t")
    with pytest.raises(ValueError, match="tables price block-string networks"):
        create_predictor("ofa_yaml", space=NasBench201Space(), table=str(tmp_path / "t"))
    with pytest.raises(ValueError, match="latency.kwargs.column: unknown key"):
        create_predictor("ofa_yaml", space=ONE, table=str(tmp_path / "t"), column="x")


def test_proxyless_keys_use_the_ratio_and_sum(tmp_path):
    arch = ArchSpec((BlockSpec("ds", 1, 3, 1, 1, 32, 16), BlockSpec("ir", 2, 5, 2, 3, 16, 24)),
                    stem_filters=32, stem_stride=2, head_filters=1280)
    keys = network_keys("proxyless_yaml", arch, 224)
    assert keys == [
        "Conv-input:224x224x3-output:112x112x32",
        "expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:3-stride:1-idskip:0",
        "expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0",
        "expanded_conv-input:56x56x24-output:56x56x24-expand:3-kernel:5-stride:1-idskip:1",
        "Conv_1-input:56x56x24-output:56x56x1280",
        "Logits-input:56x56x1280-output:1000",
    ]


def test_proxyless_config_converts_and_skips_zero_layers():
    data = {"first_conv": {"out_channels": 32, "stride": 2},
            "feature_mix_layer": {"out_channels": 1280},
            "blocks": [
                {"mobile_inverted_conv": {"name": "MBInvertedConvLayer", "in_channels": 32,
                                          "out_channels": 16, "kernel_size": 3, "stride": 1,
                                          "expand_ratio": 1}, "shortcut": None},
                {"mobile_inverted_conv": {"name": "ZeroLayer", "stride": 1},
                 "shortcut": {"name": "IdentityLayer"}},
                {"mobile_inverted_conv": {"name": "MBInvertedConvLayer", "in_channels": 16,
                                          "out_channels": 16, "kernel_size": 5, "stride": 1,
                                          "expand_ratio": 6},
                 "shortcut": {"name": "IdentityLayer"}}]}
    arch = arch_from_proxyless_config(data)
    assert [(b.op, b.kernel, b.expansion, b.skip) for b in arch.blocks] == [
        ("ds", 3, 1, "none"), ("ir", 5, 6, "identity")]


needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"shared data absent ({DATA})")


@needs_data
def test_ofa_tutorial_network_sums_to_24_73_ms_on_the_192_table():
    space = OfaMobileNetV3Space(resolutions=(192,))
    p = create_predictor("ofa_yaml", space=space, table=str(DATA / "ofa-note10" /
                                                             "192_lookup_table.yaml"))
    assert round(p.predict(TUTORIAL), 2) == 24.73
    every = create_predictor("ofa_yaml", space=OfaMobileNetV3Space(),
                             table=str(DATA / "ofa-note10"))
    assert round(every.predict(TUTORIAL), 2) == 24.73
    assert round(every.predict(OfaArch(224, (4,) * 5, (7,) * 20, (6,) * 20)), 1) == 92.4
    assert round(every.predict(OfaArch(160, (2,) * 5, (3,) * 10, (3,) * 10)), 1) == 9.9


@needs_data
def test_proxyless_mobile_on_the_pixel1_table_lacks_its_32_wide_stage():
    """The README's figure: ProxylessNAS-Mobile's second stage is 32 wide; the trimmed Pixel 1
    table has 24-wide layers there, so 3 of its 21 layers have no entry."""
    data = json.loads((DATA / "proxylessnas-pixel1" / "proxyless_mobile.json").read_text())
    arch = arch_from_proxyless_config(data)
    tables = load_layer_table(DATA / "proxylessnas-pixel1" / "mobile_trim.yaml")
    entries = tables[224]
    keys = network_keys("proxyless_yaml", arch, 224)
    missing = [k for k in keys if k not in entries]
    assert len(keys) == 1 + 20 + 2 and len(missing) == 3
    assert all("x32-" in k for k in missing)
    assert round(sum(entries[k] for k in keys if k in entries), 1) == 63.7


def test_search_with_a_missing_layer_key_exits_2_naming_it(tmp_path, capsys):
    import numpy as np

    from mnas.cli import main

    arch = OfaArch(160, (2,) * 5, (3,) * 10, (3,) * 10)
    victim = network_keys("ofa_yaml", arch.to_arch_spec(), 160)[3]
    write_ofa_tables(tmp_path / "t", drop=victim)
    rng = np.random.default_rng(0)
    shapes = {"0": (8, 128), "2": (8, 8), "4": (8, 8), "6": (1, 8)}
    np.savez(tmp_path / "acc.npz", **{f"{k}_weight": rng.normal(size=s) for k, s in shapes.items()},
             **{f"{k}_bias": np.zeros(s[0]) for k, s in shapes.items()})
    config = tmp_path / "ofa.yaml"
    config.write_text(yaml.safe_dump({
        "search_space": {"name": "ofa_mobilenetv3", "kernels": [3], "expands": [3],
                         "depths": [2], "resolutions": [160, 176]},
        "evaluator": {"name": "ofa_predictor", "path": str(tmp_path / "acc.npz")},
        "latency": {"predictor": "ofa_yaml", "table": str(tmp_path / "t"), "target_ms": 25.0},
        "budget": {"children": 20, "batch": 5}, "output": {"dir": str(tmp_path / "runs")}}))
    run = tmp_path / "run"
    assert main(["search", str(config), "--run-dir", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and repr(victim) in err and str(config) in err, err
    assert not run.exists()
    write_ofa_tables(tmp_path / "t")  # complete tables: the same search runs
    assert main(["search", str(config), "--run-dir", str(run), "--no-progress"]) == 0
