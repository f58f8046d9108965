"""Device bundles: time the table on a device that has onnxruntime but not mnas (or torch).

`write_bundle` exports everything a table build times (each distinct layer, the calibration and
validation networks, the canary) with a manifest and the standalone timing script
(`latency/device_profile.py`, the one timing procedure of mnas). The script's results file comes
back to the host, where `assemble_table` turns it into a table exactly as `build_table` does:
the same entries and keys, passes combined the same way, the same calibration fit.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mnas.progress import progress_bar
from search_spaces.space import MnasNetSpace

from . import device_profile
from .build import combine_passes, finish_table, sample_plan
from .keys import arch_onnx, canary_onnx, entry_onnx, space_entries
from .options import BuildOptions
from .table import LatencyTable, save_table

MANIFEST = "manifest.json"
SCRIPT = "device_profile.py"
VERSION = 1


def _plan(space: MnasNetSpace, options: BuildOptions) -> list[dict[str, Any]]:
    """Every graph of the build in a fixed order, with its file name (no ONNX yet)."""
    graphs: list[dict[str, Any]] = []
    for e in space_entries(space):
        graphs.append({"id": e.key, "kind": e.kind, "key": e.key, "file": f"layers/{e.key}.onnx",
                       "input": [1, e.in_channels, e.res, e.res]})
    size = space.input_size
    for kind, index, actions in sample_plan(space, options):
        graphs.append({"id": f"{kind}_{index:04d}", "kind": kind, "index": index,
                       "actions": list(actions), "file": f"networks/{kind}_{index:04d}.onnx",
                       "input": [1, 3, size, size]})
    if options.canary:
        graphs.append({"id": "canary", "kind": "canary", "file": "networks/canary.onnx",
                       "input": [1, 3, size, size]})
    return graphs


def write_bundle(space: MnasNetSpace, out: str | os.PathLike[str], options: BuildOptions,
                 profiler: dict[str, Any], *, progress: bool = True) -> dict[str, Any]:
    """Write the bundle into `out` (graphs already there are kept: an interrupted export
    resumes); returns the manifest."""
    out = Path(out)
    graphs = _plan(space, options)
    ident = hashlib.sha256(json.dumps([space.fingerprint, asdict(options),
                                       [(g["id"], g.get("actions")) for g in graphs]],
                                      sort_keys=True).encode()).hexdigest()[:16]
    manifest = {"format": device_profile.BUNDLE_FORMAT, "version": VERSION, "bundle_id": ident,
                "space_fingerprint": space.fingerprint, "space": space.to_dict(),
                "input_size": space.input_size, "num_classes": space.num_classes,
                "build": asdict(options), "profiler": profiler, "exporter": "torchscript",
                "graphs": graphs}
    old = out / MANIFEST
    if old.exists() and json.loads(old.read_text()).get("bundle_id") != ident:
        raise ValueError(f"{out}: holds another bundle (another space or build options); "
                         "use another --out")
    entries = {e.key: e for e in space_entries(space)}
    for g in progress_bar(len(graphs), desc="bundle", unit="graph", enabled=progress,
                          iterable=graphs):
        path = out / g["file"]
        if path.exists():
            continue
        if g["kind"] in device_profile.ENTRY_KINDS:
            data = entry_onnx(entries[g["key"]])
        elif g["kind"] == "canary":
            data = canary_onnx(space)
        else:
            data = arch_onnx(space, space.decode(g["actions"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    shutil.copyfile(device_profile.__file__, out / SCRIPT)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)
    return manifest


def _load_results(path: Path, space: MnasNetSpace) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a device results file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != device_profile.RESULTS_FORMAT:
        raise ValueError(f"{path}: not a device results file (missing format "
                         f"{device_profile.RESULTS_FORMAT!r})")
    if data.get("space_fingerprint") != space.fingerprint:
        raise ValueError(f"{path}: timed for another search space (fingerprint "
                         f"{data.get('space_fingerprint')!r}, the config's {space.fingerprint!r})")
    planned = {e.key for e in space_entries(space)}
    keys = {g["key"] for g in data["graphs"] if g["kind"] in device_profile.ENTRY_KINDS}
    if keys != planned:
        raise ValueError(f"{path}: its bundle has {len(keys)} table entries, this space "
                         f"{len(planned)} (a bundle from another mnas version?)")
    return data


def assemble_table(space: MnasNetSpace, results: str | os.PathLike[str],
                   out: str | os.PathLike[str]) -> LatencyTable:
    """The table of a device's results, calibrated as `build_table` calibrates."""
    path = Path(results)
    data = _load_results(path, space)
    passes = data["build"]["passes"]
    timed = data["timed"]
    missing = [g["id"] for g in data["graphs"] if g["kind"] != "canary"
               and len(timed.get(g["id"], {}).get("passes_ms", [])) < passes]
    if missing:
        raise ValueError(f"{path}: {len(missing)} of {len(data['graphs'])} graphs not timed in "
                         f"all {passes} passes yet (e.g. {missing[0]}); run the device script "
                         "again, it resumes")
    stat = data["provenance"]["profiler"]["statistic"]

    def record(gid: str) -> dict[str, Any]:
        t = timed[gid]
        ms, spread = combine_passes(t["passes_ms"], t["spreads"][-1], stat)
        return {"ms": ms, "spread": spread, "passes_ms": t["passes_ms"]}

    entries: dict[str, dict[str, Any]] = {}
    samples: list[tuple[int, dict[str, Any]]] = []  # (index, sample): sorted below
    validation: list[tuple[int, dict[str, Any]]] = []
    for g in data["graphs"]:
        if g["kind"] in device_profile.ENTRY_KINDS:
            entries[g["key"]] = dict(record(g["id"]), canary_ratio=timed[g["id"]]["canary_ratio"])
        elif g["kind"] in device_profile.SAMPLE_KINDS:
            into = samples if g["kind"] == "calibration" else validation
            into.append((g["index"], dict(record(g["id"]), actions=g["actions"])))
    provenance = dict(data["provenance"], input_size=space.input_size,
                      space_fingerprint=space.fingerprint, exporter="torchscript",
                      bundle_id=data["bundle_id"])
    save_table(LatencyTable(space=space.to_dict(), fingerprint=space.fingerprint,
                            provenance=provenance, entries=entries,
                            samples=[s for _, s in sorted(samples, key=lambda t: t[0])],
                            canary=data["canary"],
                            validation=[s for _, s in sorted(validation, key=lambda t: t[0])],
                            complete=False), out)
    return finish_table(space, out)
