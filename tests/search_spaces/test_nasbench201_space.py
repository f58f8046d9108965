"""NasBench201Space: 15,625 cells, lossless official strings, action round trips, bad input."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from search_spaces import NB201_OPS, NasBench201Space, Nb201Arch, create_space, space_to_dict

SPACE = NasBench201Space()
EXAMPLE = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
           "skip_connect~2|")
SHARED = Path(os.environ.get("MNAS_SHARED", Path(__file__).resolve().parents[3] / "shared"))
CSV = SHARED / "data" / "nas-benchmarks" / "nasbench201" / "nasbench201_hw.csv"


def test_six_decisions_of_five_ops_make_15625_cells():
    assert [d.name for d in SPACE.decisions] == ["edge1<-0", "edge2<-0", "edge2<-1", "edge3<-0",
                                                 "edge3<-1", "edge3<-2"]
    assert all(d.choices == NB201_OPS for d in SPACE.decisions)
    assert SPACE.size == 15625


def test_official_string_decodes_and_encodes_exactly():
    arch = Nb201Arch.from_string(EXAMPLE)
    assert arch.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect",
                        "nor_conv_3x3", "skip_connect")
    assert arch.to_string() == EXAMPLE == str(arch)
    assert SPACE.to_strings(arch) == [EXAMPLE]
    assert SPACE.from_strings([EXAMPLE]) == arch


def test_every_cell_round_trips_through_actions_and_string():
    seen = set()
    for actions in itertools.product(range(5), repeat=6):
        arch = SPACE.decode(actions)
        text = arch.to_string()
        assert Nb201Arch.from_string(text) == arch
        assert SPACE.encode(arch) == list(actions)
        seen.add(text)
    assert len(seen) == 15625


@given(st.lists(st.integers(0, 4), min_size=6, max_size=6))
def test_round_trip_property(actions):
    arch = SPACE.decode(actions)
    assert SPACE.encode(Nb201Arch.from_string(arch.to_string())) == actions


@pytest.mark.parametrize("text, fragment", [
    ("|none~0|+|none~0|none~1|", "3 nodes"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 edges"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "'op~0'"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "op 'conv'"),
    ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must be '|op~i|...|'"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 'none0'"),
])
def test_malformed_strings_name_the_problem(text, fragment):
    with pytest.raises(ValueError, match="NAS-Bench-201 string") as err:
        Nb201Arch.from_string(text)
    assert fragment in str(err.value)


def test_bad_actions_and_ops_are_value_errors():
    with pytest.raises(ValueError, match="expected 6 actions"):
        SPACE.decode([0] * 5)
    with pytest.raises(ValueError, match="edge1<-0"):
        SPACE.decode([5, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="op 'sep_conv'"):
        Nb201Arch(("sep_conv",) * 6)
    with pytest.raises(ValueError, match="6 op names"):
        Nb201Arch(("none",) * 5)


def test_selected_by_name_and_unknown_settings_rejected():
    assert create_space({"name": "nasbench201"}) == SPACE
    assert space_to_dict(SPACE) == {"name": "nasbench201"}
    with pytest.raises(ValueError, match="search_space.kernels: unknown key"):
        create_space({"name": "nasbench201", "kernels": [3]})
    with pytest.raises(ValueError, match="search_space.name: unknown space 'nb101'"):
        create_space({"name": "nb101"})
    assert space_to_dict(create_space({}))["name"] == "mnasnet"


def test_sample_is_seeded():
    a = SPACE.sample(np.random.default_rng(1))
    assert a == SPACE.sample(np.random.default_rng(1))
    assert isinstance(a, Nb201Arch)


@pytest.mark.skipif(not CSV.exists(), reason=f"shared data absent ({CSV})")
def test_every_row_of_the_benchmark_table_round_trips():
    import csv
    with CSV.open(newline="") as f:
        strings = [row["arch"] for row in csv.DictReader(f)]
    assert len(set(strings)) == 15625
    for text in strings:
        assert Nb201Arch.from_string(text).to_string() == text
