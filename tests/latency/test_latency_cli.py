"""`mnas latency measure|build|validate`: output, files written, and exit code 2 with one line
for bad input."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from latency import load_table
from mnas.cli import main

FAST_FLAGS = ["--runs", "3", "--rounds", "2", "--warmup", "1"]


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mnas latency: error: ")
    return err


@pytest.mark.parametrize("arch", [["mnasnet_a1"], ["mobilenet_v2@0.5"],
                                  ["r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24"]])
def test_measure(arch: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "measure", *arch, "--input-size", "32", *FAST_FLAGS]) == 0
    out = capsys.readouterr().out
    match = re.fullmatch(r"(.+): ([0-9.]+) ms \(32x32, batch 1; min of 2x3 runs after 1 "
                         r"warm-up, spread [0-9.]+%; onnxruntime \S+ CPUExecutionProvider, "
                         r"1 thread\)\n", out)
    assert match, out
    assert match.group(1) == " ".join(arch) and float(match.group(2)) > 0


@pytest.mark.parametrize("argv, message", [
    (["mnasnet_a9"], "neither a reference name"),
    (["mnasnet_a1", "--input-size", "0"], "--input-size"),
    (["mnasnet_a1", "--threads", "0"], "latency.kwargs.profiler.threads"),
    (["mnasnet_a1", "--provider", "NoSuchProvider"], "'NoSuchProvider' is not available"),
])
def test_measure_bad_input(argv: list[str], message: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "measure", *argv]) == 2
    assert message in _error_line(capsys)


def test_build_then_validate(tiny_config: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "out" / "t.json"
    assert main(["latency", "build", str(tiny_config), "--out", str(table),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {table}: 22 entries, 12 calibration samples" in out
    loaded = load_table(table)
    assert loaded.complete and loaded.provenance["input_size"] == 16
    assert loaded.provenance["profiler"]["runs"] == 3  # the config's profiler settings

    report = tmp_path / "v.json"
    assert main(["latency", "validate", str(tiny_config), "--lut", str(table), "--samples", "8",
                 "--json", str(report), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^mape\s+[0-9.]+%\s+[0-9.]+%$", out, re.M), out
    data = json.loads(report.read_text())
    assert data["samples"] == 8 and 0 <= data["measurement_cv"]
    for name in ("lut", "flops"):
        assert set(data[name]) >= {"mape", "within_5pct", "within_10pct", "kendall_tau",
                                   "spearman_rho"}
        assert 0 <= data[name]["within_5pct"] <= data[name]["within_10pct"] <= 1


def test_build_progress_bar(tiny_config: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "build", str(tiny_config), "--out", str(tmp_path / "t.json")]) == 0
    err = capsys.readouterr().err
    # (22 entries + 12 calibration networks) x 2 passes
    assert "latency table" in err and "100%" in err and "68/68" in err


def test_build_passes_flag_adds_passes_to_a_finished_table(
        tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.json"
    assert main(["latency", "build", str(tiny_config), "--out", str(table), "--passes", "1"]) == 0
    assert "34/34" in capsys.readouterr().err  # 22 entries once + 12 calibration networks
    one = json.loads(table.read_text())["entries"]
    assert {len(v["passes_ms"]) for v in one.values()} == {1}
    assert main(["latency", "build", str(tiny_config), "--out", str(table), "--passes", "2"]) == 0
    assert "34/34" in capsys.readouterr().err  # only the second pass is timed
    two = json.loads(table.read_text())
    assert two["complete"] and {len(v["passes_ms"]) for v in two["entries"].values()} == {2}
    assert {len(s["passes_ms"]) for s in two["samples"]} == {2}
    assert all(two["entries"][k]["passes_ms"][0] == v["ms"] for k, v in one.items())
    assert main(["latency", "build", str(tiny_config), "--out", str(table), "--passes", "0"]) == 2
    assert "latency.kwargs.build.passes: expected an integer >= 1, got 0" in _error_line(capsys)


def test_validate_reports_samples_timed_during_the_build(
        tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, out = tmp_path / "t.json", tmp_path / "v.json"
    assert main(["latency", "build", str(tiny_config), "--out", str(table), "--no-progress",
                 "--validation-samples", "5"]) == 0
    assert main(["latency", "validate", str(tiny_config), "--lut", str(table), "--samples", "4",
                 "--no-progress", "--json", str(out)]) == 0
    assert "timed interleaved with the build (5 architectures): lut MAPE" in \
        capsys.readouterr().out
    inter = json.loads(out.read_text())["interleaved"]
    assert inter["samples"] == 5 and 0 <= inter["lut"]["within_10pct"] <= 1


def test_build_refuses_table_of_another_space(tiny_config: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.json"
    assert main(["latency", "build", str(tiny_config), "--out", str(table), "--no-progress"]) == 0
    capsys.readouterr()
    argv = ["--set", "search_space.input_size=24", "--no-progress"]
    assert main(["latency", "build", str(tiny_config), "--out", str(table), *argv]) == 2
    assert "input_size (table 16, config 24)" in _error_line(capsys)
    assert main(["latency", "validate", str(tiny_config), "--lut", str(table), *argv]) == 2
    assert "input_size (table 16, config 24)" in _error_line(capsys)


@pytest.mark.parametrize("extra, message", [
    (["--lut", "{tmp}/missing.json"], "no such latency table"),
    (["--lut", "{tmp}/corrupt.json"], "corrupt latency table"),
    (["--lut", "{tmp}/corrupt.json", "--samples", "1"], "--samples"),
    (["--lut", "{tmp}/corrupt.json", "--sweeps", "0"], "--sweeps"),
    ([], "needs --lut FILE"),
])
def test_validate_bad_input(extra: list[str], message: str, tiny_config: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "corrupt.json").write_text('{"format": "mnas-latency-table", "vers')
    argv = [a.format(tmp=tmp_path) for a in extra]
    assert main(["latency", "validate", str(tiny_config), *argv]) == 2
    assert message in _error_line(capsys)


def test_build_bad_input(tiny_config: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "build", str(tiny_config)]) == 2
    assert "needs --out FILE" in _error_line(capsys)
    assert main(["latency", "build", str(tmp_path / "nope.yaml"), "--out", "x.json"]) == 2
    assert "no such experiment config" in _error_line(capsys)
    assert main(["latency", "build", str(tiny_config), "--out", str(tmp_path)]) == 2
    assert "is a directory" in _error_line(capsys)
