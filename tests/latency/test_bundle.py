"""Device bundles: the shipped script times a bundle with numpy and onnxruntime alone (torch and
mnas cannot be imported where it runs), resumes, and the table assembled from its results is the
table a local build makes (exactly, when both see the same timings)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from latency import load_table
from latency.build import build_table
from latency.keys import space_entries
from latency.options import BuildOptions
from mnas.config.loader import load_section, to_plain
from mnas.cli import main
from search_spaces.space import MnasNetSpace


#: Installed by sitecustomize in the device's Python: importing any of these fails there.
BLOCKER = '''
import sys
BLOCKED = {"torch", "mnas", "search_spaces", "latency", "controllers", "yaml", "scipy"}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on this device")
        return None
sys.meta_path.insert(0, Blocker())
'''


def _device_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "device_site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    return env


def _on_device(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=_device_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)


def test_the_device_has_neither_torch_nor_mnas(tmp_path: Path) -> None:
    for module in ("torch", "mnas", "latency"):
        done = _on_device(tmp_path, "-c", f"import {module}")
        assert done.returncode != 0 and "not installed on this device" in done.stderr
    assert _on_device(tmp_path, "-c", "import numpy, onnxruntime").returncode == 0


def test_bundle_timed_on_device_assembles_like_a_local_build(
        tmp_path: Path, tiny_config: Path, tiny_table_path: Path) -> None:
    bundle = tmp_path / "bundle"
    assert main(["latency", "bundle", str(tiny_config), "--out", str(bundle),
                 "--no-progress"]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert (bundle / "device_profile.py").exists() and manifest["graphs"]
    for g in manifest["graphs"]:
        assert (bundle / g["file"]).stat().st_size > 100 and len(g["input"]) == 4
    device = tmp_path / "device"  # copied to the device: only this directory goes there
    os.rename(bundle, device)
    done = _on_device(tmp_path, str(device / "device_profile.py"), str(device), "--no-pin")
    assert done.returncode == 0, done.stderr
    assert "pass 2/2" in done.stderr  # progress
    results = device / "results.json"
    first = json.loads(results.read_text())
    assert first["complete"] and first["provenance"]["profiler"]["runs"] == 3

    again = _on_device(tmp_path, str(device / "device_profile.py"), str(device), "--no-pin")
    assert again.returncode == 0  # a finished run resumes into nothing to time
    assert json.loads(results.read_text())["timed"] == first["timed"]

    table_path = tmp_path / "table.json"
    assert main(["latency", "build", str(tiny_config), "--from-bundle", str(results),
                 "--out", str(table_path)]) == 0
    table, local = load_table(table_path), load_table(tiny_table_path)
    assert table.complete and set(table.entries) == set(local.entries)
    assert [s["actions"] for s in table.samples] == [s["actions"] for s in local.samples]
    assert set(table.calibration["fits"]) == set(local.calibration["fits"])
    assert table.provenance["profiler"] == local.provenance["profiler"]
    assert table.provenance["bundle_id"] == manifest["bundle_id"]


def test_device_script_errors_are_one_line(tmp_path: Path) -> None:
    script = Path(__file__).parents[2] / "latency" / "device_profile.py"
    done = _on_device(tmp_path, str(script), str(tmp_path / "nowhere"))
    assert done.returncode == 2 and done.stderr.startswith("device_profile: error: ")
    assert len(done.stderr.strip().splitlines()) == 1


# -- exact equality under identical timings -----------------------------------------------------
def _ms(data: bytes) -> float:
    return 0.1 + int(hashlib.sha256(data).hexdigest()[:6], 16) % 1000 / 500


class KeyedProfiler:
    """Times a graph as a function of its bytes (the entry key / the actions)."""

    def __init__(self) -> None:
        from latency.options import ProfilerConfig
        self.config = ProfilerConfig(warmup=1, runs=3, rounds=2, pin=False)

    def measure(self, data: bytes) -> Any:
        from latency.profiler import Measurement
        return Measurement(ms=_ms(data), spread=0.01)

    def provenance(self) -> dict[str, Any]:
        return {"onnxruntime": "x", "provider": "CPUExecutionProvider", "threads": 1,
                "cpu": "x", "batch": 1, "profiler": to_plain(self.config), "date": "d"}


def test_bundle_table_equals_local_build_for_the_same_timings(
        tmp_path: Path, tiny_space: MnasNetSpace, monkeypatch: pytest.MonkeyPatch,
        tiny_build: dict[str, Any]) -> None:
    import latency.build as build
    import latency.bundle as bundle
    import latency.device_profile as device

    def arch_bytes(space: MnasNetSpace, arch: Any) -> bytes:
        return json.dumps(space.encode(arch)).encode()

    for module in (build, bundle):
        monkeypatch.setattr(module, "entry_onnx", lambda e: e.key.encode())
        monkeypatch.setattr(module, "arch_onnx", arch_bytes)
        monkeypatch.setattr(module, "canary_onnx", lambda space: b"canary")
    options = load_section(BuildOptions, dict(tiny_build, validation_samples=4, canary=True))
    local = build_table(tiny_space, KeyedProfiler(), tmp_path / "local.json", options,
                        progress=False)

    bundle.write_bundle(tiny_space, tmp_path / "b", options, to_plain(KeyedProfiler().config),
                        progress=False)

    def measure(run: Any, ids: list[str]) -> list[tuple[float, float, list[float]]]:
        out = []
        for i in ids:
            ms = _ms((Path(run.bundle) / run.graphs[i]["file"]).read_bytes())
            out.append((ms, 0.01, [ms]))
        return out

    monkeypatch.setattr(device._Run, "measure", measure)
    assert device.main([str(tmp_path / "b"), "--no-pin", "--quiet"]) == 0
    table = bundle.assemble_table(tiny_space, tmp_path / "b" / "results.json",
                                  tmp_path / "bundle.json")
    for name in ("entries", "samples", "validation", "calibration"):
        assert getattr(table, name) == getattr(local, name), name
    assert [c["ms"] for c in table.canary] == [c["ms"] for c in local.canary]
    assert set(table.entries) == {e.key for e in space_entries(tiny_space)}


def test_unfinished_or_foreign_results_are_refused(tmp_path: Path, tiny_space: MnasNetSpace,
                                                  tiny_dict: dict[str, Any]) -> None:
    from latency.bundle import assemble_table
    results = tmp_path / "results.json"
    graphs = [{"id": e.key, "kind": e.kind, "key": e.key} for e in space_entries(tiny_space)]
    data = {"format": "mnas-device-results", "space_fingerprint": tiny_space.fingerprint,
            "graphs": graphs, "timed": {}, "build": {"passes": 2}, "bundle_id": "x",
            "provenance": {"profiler": {"statistic": "min"}}, "canary": []}
    results.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not timed in all 2 passes yet"):
        assemble_table(tiny_space, results, tmp_path / "t.json")
    other = MnasNetSpace.from_dict(dict(tiny_dict, kernels=[3]))
    with pytest.raises(ValueError, match="timed for another search space"):
        assemble_table(other, results, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()

