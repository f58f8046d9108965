"""`mnas describe NAME_OR_BLOCK_STRINGS [--input-size N] [--num-classes N]`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnas.cli import main
from mnas.architectures import resolve_arch
from mnas.commands.describe import describe_table
from search_spaces import decode_arch, encode_arch, reference_arch

A1_TABLE = """\
block       op  k  s  e    se      skip  r   in   out  out res
 stem     conv  3  2  -     -         -  1    3    32  112x112
    1       ds  3  1  1     0      none  1   32    16  112x112
    2       ir  3  2  6     0  identity  2   16    24    56x56
    3       ir  5  2  3  0.25  identity  3   24    40    28x28
    4       ir  3  2  6     0  identity  4   40    80    14x14
    5       ir  3  1  6  0.25  identity  2   80   112    14x14
    6       ir  5  2  6  0.25  identity  3  112   160      7x7
    7       ir  3  1  6     0  identity  1  160   320      7x7
 head  conv1x1  1  1  -     -         -  1  320  1280      1x1
input 224x224, 1000 classes: 3,887,038 parameters, 311.6M multiply-adds
"""


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """describe runs one forward pass per call; on a shared 2-core box more threads only
    oversubscribe (several times slower), so the tests use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_describe_mnasnet_a1_exact_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "mnasnet_a1"]) == 0
    out, err = capsys.readouterr()
    assert out == A1_TABLE
    assert err == ""


def test_describe_small_input_and_classes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "mnasnet_a1", "--input-size", "32", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].endswith("16x16") and lines[7].endswith("1x1")
    # 1000 -> 10 classes removes 1280 * 990 + 990 FC parameters.
    assert lines[-1] == ("input 32x32, 10 classes: 2,618,848 parameters, "
                         "6.6M multiply-adds")
    assert 3_887_038 - 1280 * 990 - 990 == 2_618_848


def test_describe_published_b1_and_width(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "mnasnet_b1"]) == 0
    assert "4,383,312 parameters, 314.4M multiply-adds" in capsys.readouterr().out
    assert main(["describe", "mobilenet_v2@0.35"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()  # MobileNetV2's published ReLU6 on every layer, stem and head
    assert lines[1].split() == ["stem", "conv+relu6", "3", "2", "-", "-", "-", "1", "3", "16",
                                "112x112"]
    assert lines[2].split()[1] == "ds+relu6" and lines[9].split()[1] == "conv1x1+relu6"
    assert "1,677,128 parameters, 59.3M multiply-adds" in out


@pytest.mark.parametrize("argv", [
    ["r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24_poolskip"],          # separate args
    ["r1_k3_s11_e1_i32_o16_noskip,r2_k3_s22_e6_i16_o24_poolskip"],             # comma-separated
])
def test_describe_block_strings(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", *argv, "--input-size", "64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split() == ["1", "ds", "3", "1", "1", "0", "none", "1", "32", "16", "32x32"]
    assert out[3].split() == ["2", "ir", "3", "2", "6", "0", "pool", "2", "16", "24", "16x16"]
    assert out[-1].startswith("input 64x64, 1000 classes: ")


def test_describe_timm_strings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "ds_r1_k3_s1_e1_c16_noskip ir_r2_k3_s2_e6_c24 cn_r2_k3_s1_c24",
                 "--input-size", "64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3].split() == ["2", "ir", "3", "2", "6", "0", "identity", "2", "16", "24", "16x16"]
    assert out[4].split()[6] == "none"  # timm's cn_ has a residual only with _skip
    assert main(["describe", "ds_r1_k3_s1_e1_c16_noskip ir_r2_k3_s2_e6_c24_poolskip"]) == 2
    err = capsys.readouterr().err
    assert "'ir_r2_k3_s2_e6_c24_poolskip'" in err and "timm ignores 'poolskip'" in err
    assert len(err.strip().splitlines()) == 1


def test_describe_regular_conv_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "r2_k5_s22_e1_i32_o24_se0.25_conv", "--input-size", "33"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row == ["1", "conv", "5", "2", "1", "0.25", "identity", "2", "32", "24", "9x9"]


def test_describe_export_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = reference_arch("mnasnet_b1")
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"blocks": encode_arch(arch, format="timm"), "format": "timm",
                                "stem_filters": 32, "stem_stride": 2, "head_filters": 1280,
                                "dropout": 0.2}))
    assert resolve_arch(str(path)) == arch
    assert main(["describe", str(path)]) == 0
    assert "4,383,312 parameters" in capsys.readouterr().out


def test_describe_table_matches_resolve_of_name() -> None:
    arch = resolve_arch(["mnasnet_a1"])
    assert arch == decode_arch(encode_arch(reference_arch("mnasnet_a1")))
    assert describe_table(arch, 224, 1000) + "\n" == A1_TABLE


@pytest.mark.parametrize("argv, fragment", [
    (["mnasnet_a2"], "'mnasnet_a2' is neither a reference name"),
    (["resnet50"], "is neither a reference name"),
    (["mnasnet_a1@wide"], "width after '@' must be a number"),
    (["mnasnet_a1@0"], "width multiplier must be"),
    (["mnasnet_a1@inf"], "width multiplier must be"),
    (["r1_k3_s2_e1_i32_o16"], "token 's2'"),
    (["r1_k3_s11_e1_i32_o16", "r1_k3_s22_e6_i24_o32"], "block 2 takes 24 input filters"),
    (["ir_r1_k3_s2_e6_c24_bogus"], "token 'bogus'"),
    (["missing.json"], "missing.json: no such file"),
    (["mnasnet_a1", "--input-size", "0"], "--input-size and --num-classes must be positive"),
])
def test_describe_errors_are_one_line_exit_2(argv: list[str], fragment: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("mnas describe: error: ") and err.count("\n") == 1
    assert fragment in err
    assert "Traceback" not in err


def test_describe_bad_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["describe", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"arch": []}))
    assert main(["describe", str(bad)]) == 2
    assert "expected an object" in capsys.readouterr().err


def test_console_script_runs(tmp_path: Path) -> None:
    """The installed `mnas` entry point (not just `main`) works and exits 2 on bad input."""
    script = Path(sys.executable).parent / "mnas"
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ok = subprocess.run([str(script), "describe", "mnasnet_b1", "--input-size", "64"],
                        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "4,383,312 parameters" in ok.stdout
    bad = subprocess.run([str(script), "describe", "r1_k3_s2_e1_i32_o16"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("mnas describe: error: block string")
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_describe_names_families_outside_the_grammar(capsys: pytest.CaptureFixture) -> None:
    assert main(["describe", "shufflenet_v2@0.5", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("shufflenet_v2@0.5: shufflenet_v2 at width 0.5")
    assert "1,366,792 parameters" in out
    assert resolve_arch("mobilenet_v1@0.25").label == "mobilenet_v1@0.25"


def test_describe_efficientnet_marks_swish(capsys: pytest.CaptureFixture) -> None:
    assert main(["describe", "efficientnet_b0"]) == 0
    out = capsys.readouterr().out
    assert "ir+swish" in out and "5,288,548 parameters" in out


def test_describe_bad_family_width_is_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["describe", "squeezenet1_1@0.5"]) == 2
    assert "squeezenet1_1: width must be one of 1" in capsys.readouterr().err
