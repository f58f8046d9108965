"""What MobileNetV2's published ReLU6 costs against its ReLU twin (the network the search space
holds, and the one the reference was before issue 17), timed round-robin with the project's
profiler (CPU, 1 thread, batch 1, minimum over rounds).

    .venv/bin/python bench/relu6_latency.py [--rounds 5] [--repeats 2]

The two graphs differ only in the activation (ONNX `Clip(0, 6)` instead of `Relu`). Each repeat
times both side by side; the ratio ReLU6 / ReLU is reported per repeat and as their median.
Writes bench/results/relu6_latency.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency.options import ProfilerConfig
from latency.profiler import Profiler
from search_spaces import ArchSpec, build_model, reference_arch
from search_spaces.onnx_export import export_onnx_bytes

OUT = ROOT / "bench" / "results" / "relu6_latency.json"
CASES = ((0.35, 224), (0.5, 224), (1.0, 224), (0.5, 32))


def relu_twin(arch: ArchSpec) -> ArchSpec:
    return arch.with_(blocks=tuple(b.with_(act="relu") for b in arch.blocks), activation="relu")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="profiler rounds per repeat")
    p.add_argument("--repeats", type=int, default=2, help="side-by-side timings per case")
    args = p.parse_args()
    profiler = Profiler(ProfilerConfig(rounds=args.rounds))
    rows = []
    for width, size in CASES:
        arch = reference_arch("mobilenet_v2", width)
        graphs = [export_onnx_bytes(build_model(a), size) for a in (arch, relu_twin(arch))]
        ratios, times = [], []
        for _ in range(args.repeats):
            relu6, relu = profiler.measure_many(graphs)
            ratios.append(relu6.ms / relu.ms)
            times.append({"relu6_ms": relu6.ms, "relu_ms": relu.ms})
        rows.append({"arch": f"mobilenet_v2@{width:g}", "input_size": size, "timings": times,
                     "ratios": ratios, "median_ratio": statistics.median(ratios)})
        print(f"mobilenet_v2@{width:g} {size}x{size}: ReLU6/ReLU "
              + " ".join(f"{r:.3f}" for r in ratios)
              + f" (ms {times[-1]['relu6_ms']:.3f} vs {times[-1]['relu_ms']:.3f})", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"command": " ".join(sys.argv), "provenance":
                               profiler.provenance(), "rows": rows}, indent=1))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
