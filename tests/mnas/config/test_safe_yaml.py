"""Issue 20: YAML that expands or nests without bound is refused, with one line, wherever mnas
reads YAML (experiment configs, `--set` values, `mnas train --config`)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mnas.cli import main

TINY = (Path(__file__).parents[1] / "search" / "tiny_search.yaml").read_text()


def _bomb(levels: int = 10) -> str:
    """`levels` anchors of ten aliases each: 10**levels values once expanded."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines)


def _flow_bomb(levels: int = 10) -> str:
    """The same bomb as one flow mapping (what a `--set` value can hold)."""
    return "{" + _bomb(levels).replace("\n", ", ") + "}"


def _one_line(capsys: pytest.CaptureFixture[str], command: str, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mnas {command}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.timeout(60)
def test_an_alias_bomb_under_latency_kwargs_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bomb.yaml"
    indented = "\n".join("    " + line for line in _bomb().splitlines())
    config.write_text(TINY.replace("latency: {predictor: flops, kwargs: {ms_per_mmac: 1.0}, "
                                   "target_ms: 0.05}",
                                   "latency:\n  predictor: flops\n  target_ms: 0.05\n  kwargs:\n"
                                   "    ms_per_mmac: 1.0\n    extra:\n" + indented))
    assert main(["search", str(config), "--local", "--no-progress",
                 "--run-dir", str(tmp_path / "run")]) == 2
    _one_line(capsys, "search", str(config), "aliases expand to more than")
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(60)
def test_an_alias_bomb_in_a_set_value_is_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    assert main(["search", str(config), "--local", "--no-progress", "--run-dir",
                 str(tmp_path / "run"), "--set", f"latency.kwargs={_flow_bomb()}"]) == 2
    _one_line(capsys, "search", "--set latency.kwargs", "aliases expand")


@pytest.mark.timeout(60)
def test_an_alias_bomb_given_to_train_is_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text(TINY + "\n" + _bomb().replace("l", "x_l", 1))
    assert main(["train", "mnasnet_a1", "--config", str(config), "--out",
                 str(tmp_path / "out"), "--quiet"]) == 2
    _one_line(capsys, "train", str(config), "aliases expand")
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)
def test_yaml_nested_ten_thousand_deep_is_one_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "deep.yaml"
    config.write_text(TINY + "\nextra: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert main(["search", str(config), "--local", "--no-progress",
                 "--run-dir", str(tmp_path / "run")]) == 2
    _one_line(capsys, "search", str(config), "nested deeper than", "line ")


def test_limits_leave_ordinary_yaml_alone() -> None:
    from mnas.config.safe_yaml import MAX_NODES, safe_load

    text = "base: &b {kernel: 3, stride: 1}\nblocks: [*b, *b, *b]\n"
    assert safe_load(text) == yaml.safe_load(text)
    assert safe_load("") is None and safe_load("# only a comment\n") is None
    wide = "[" + ", ".join(["1"] * (MAX_NODES - 10)) + "]"  # big, but not expanded by aliases
    assert len(safe_load(wide)) == MAX_NODES - 10
    with pytest.raises(ValueError, match="refers to the value that contains it"):
        safe_load("a: &a [1, *a]")
    with pytest.raises(yaml.YAMLError):
        safe_load("a: [1")
