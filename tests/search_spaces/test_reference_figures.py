"""Published parameter and multiply-add figures the builder must hit exactly."""
import pytest

from search_spaces import build_model, count_macs, count_params, encode_arch, reference_arch
from search_spaces.reference import REFERENCE_STRINGS


@pytest.mark.parametrize("name, params", [("mnasnet_b1", 4_383_312), ("mobilenet_v2", 3_504_872)])
def test_published_parameter_counts(name: str, params: int) -> None:
    assert count_params(build_model(reference_arch(name), num_classes=1000)) == params


def test_mnasnet_a1_matches_paper() -> None:
    model = build_model(reference_arch("mnasnet_a1"), num_classes=1000)
    assert round(count_params(model) / 1e6, 1) == 3.9
    assert round(count_macs(model, 224) / 1e6) == 312


@pytest.mark.parametrize("name", sorted(REFERENCE_STRINGS))
def test_official_strings_round_trip(name: str) -> None:
    assert encode_arch(reference_arch(name)) == list(REFERENCE_STRINGS[name])
