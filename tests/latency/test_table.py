"""Table files: save/load round trip, and clear errors for corrupt files, tables of another
space or resolution, incomplete tables and architectures outside the table."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latency import create_predictor, load_table
from latency.table import save_table
from latency.keys import layer_macs, space_entries
from search_spaces import build_model, count_macs
from search_spaces.space import MnasNetSpace


def test_round_trip(tiny_table_path: Path, tmp_path: Path) -> None:
    table = load_table(tiny_table_path)
    assert table.complete and table.entries and table.samples and table.calibration
    copy = tmp_path / "sub" / "copy.json"
    save_table(table, copy)
    again = load_table(copy)
    assert dataclasses.replace(again, path="") == dataclasses.replace(table, path="")
    assert not list(copy.parent.glob("*.tmp"))  # atomic write leaves no temp file


def test_provenance_and_entries(tiny_table_path: Path, tiny_space: MnasNetSpace) -> None:
    table = load_table(tiny_table_path)
    prov = table.provenance
    for key in ("onnxruntime", "provider", "threads", "cpu", "batch", "input_size",
                "space_fingerprint", "date"):
        assert key in prov, key
    assert prov["batch"] == 1 and prov["input_size"] == 16 and prov["threads"] == 1
    assert prov["space_fingerprint"] == tiny_space.fingerprint == table.fingerprint
    assert set(table.entries) == {e.key for e in space_entries(tiny_space)}
    for entry in table.entries.values():
        assert entry["ms"] > 0 and entry["spread"] >= 0


def _corrupt(src: Path, dst: Path, edit: Any) -> Path:
    data = json.loads(src.read_text())
    edit(data)
    dst.write_text(json.dumps(data))
    return dst


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("format"), "not an mnas latency table"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.update(entries=[]), "'entries' missing or not a dict"),
    (lambda d: d["entries"].update({"stem_c3_o8_s1_r16": {"ms": "fast"}}),
     "entry 'stem_c3_o8_s1_r16' has no valid 'ms'"),
    (lambda d: d["space"].update(head_filters=64), "fingerprint does not match"),
])
def test_corrupt_tables(tiny_table_path: Path, tmp_path: Path, edit: Any, message: str) -> None:
    path = _corrupt(tiny_table_path, tmp_path / "bad.json", edit)
    with pytest.raises(ValueError, match=message) as info:
        load_table(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_file(tiny_table_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text(tiny_table_path.read_text()[:500])
    with pytest.raises(ValueError, match="corrupt latency table"):
        load_table(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such latency table"):
        load_table(tmp_path / "nope.json")


@pytest.mark.parametrize("change, named", [({"input_size": 32}, "input_size"),
                                           ({"kernels": [3, 5, 7]}, "kernels")])
def test_table_of_another_space(tiny_table_path: Path, tiny_dict: dict[str, Any],
                                change: dict[str, Any], named: str) -> None:
    other = MnasNetSpace.from_dict({**tiny_dict, **change})
    for name in ("lut", "flops"):
        with pytest.raises(ValueError, match=f"built for another search space: {named}"):
            create_predictor(name, space=other, table=str(tiny_table_path))


def test_arch_with_missing_key(tiny_table_path: Path, tiny_space: MnasNetSpace) -> None:
    """An architecture the table's space cannot produce names the missing entry."""
    lut = create_predictor("lut", space=tiny_space, table=str(tiny_table_path))
    arch = tiny_space.sample(np.random.default_rng(0))
    odd = arch.with_(blocks=(arch.blocks[0], dataclasses.replace(arch.blocks[1], kernel=7)))
    with pytest.raises(ValueError, match=r"no entry '\w+_k7_s2_i8_o12_"):
        lut.predict(odd)


def test_incomplete_table_refused(tiny_table_path: Path, tmp_path: Path,
                                  tiny_space: MnasNetSpace) -> None:
    path = _corrupt(tiny_table_path, tmp_path / "part.json", lambda d: d.update(complete=False))
    with pytest.raises(ValueError, match="incomplete"):
        create_predictor("lut", space=tiny_space, table=str(path))


def test_space_entries_cover_every_arch(tiny_space: MnasNetSpace, arch_entries: Any) -> None:
    keys = {e.key for e in space_entries(tiny_space)}
    for actions in np.ndindex(*[d.size for d in tiny_space.decisions]):
        arch = tiny_space.decode(list(actions))
        assert {e.key for e in arch_entries(arch, 16, 10)} <= keys


@pytest.mark.parametrize("seed", range(4))
def test_analytic_macs_match_count_macs(seed: int) -> None:
    """The flops predictor's analytic count equals the builder's own count."""
    from latency.examples import macs_and_weights
    space = MnasNetSpace(input_size=32, num_classes=10)
    arch = space.sample(np.random.default_rng(seed))
    model = build_model(arch, num_classes=10)
    assert macs_and_weights(arch, 32, 10)[0] == count_macs(model, 32)
    assert layer_macs(next(iter(arch.layers())), 16) > 0
