"""Data benchmarks (timings are noisy here: compared side by side within one run).

  imagefolder  an image folder of generated JPEG/PNG files, decoded on the first run (a cache
               miss) vs memory-mapped from the cache on later runs (what every worker and resume
               pays), and `load_dataset` end to end both ways. Target: a cached load >= 10x faster
               than decoding.
  precision    images/s of `train_child` in fp32, bf16 and fp16 on this CPU (autocast), ABAB:
               what `child_training.precision` costs where there is no GPU.

  .venv/bin/python bench/data_bench.py imagefolder [--images 4000] [--rounds 3]
  .venv/bin/python bench/data_bench.py precision [--rounds 3]

Writes bench/results/data_<mode>.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def make_folder(root: Path, images: int, classes: int, seed: int = 0) -> None:
    """Smooth random images (gradients plus blobs, 96x72 to 160x120) as JPEG and PNG files."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(images):
        cls = i % classes
        w, h = int(rng.integers(96, 161)), int(rng.integers(72, 121))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (cls + 1) * 2) % 256, (yy * 3) % 256,
                         np.full_like(xx, 40 * cls % 256)], axis=-1)
        noise = rng.integers(0, 40, size=(h, w, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        folder = root / f"class{cls}"
        folder.mkdir(parents=True, exist_ok=True)
        fmt = "png" if i % 4 == 0 else "jpg"
        Image.fromarray(pixels).save(folder / f"{i}.{fmt}", quality=90)


def bench_imagefolder(args: argparse.Namespace) -> dict[str, Any]:
    from mnas.training import data as data_mod
    from mnas.training.data import DataConfig
    from mnas.training.imagefolder import load_imagefolder

    work = Path(tempfile.mkdtemp(prefix="mnas-data-bench-"))
    rows = []
    try:
        folder = work / "images"
        make_folder(folder, args.images, args.classes)
        nbytes = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        for r in range(args.rounds):
            cache = work / f"cache{r}"
            cfg = DataConfig(name="imagefolder", path=str(folder), input_size=args.size,
                             cache_dir=str(cache))
            t0 = time.perf_counter()
            load_imagefolder(str(folder), args.size, str(cache), progress=False)
            decode_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            cached = load_imagefolder(str(folder), args.size, str(cache), progress=False)
            mmap_s = time.perf_counter() - t0
            assert isinstance(cached.images, np.memmap)
            data_mod.load_dataset.cache_clear()
            t0 = time.perf_counter()
            data_mod.load_dataset(cfg)
            dataset_cached_s = time.perf_counter() - t0
            shutil.rmtree(cache)
            data_mod.load_dataset.cache_clear()
            t0 = time.perf_counter()
            data_mod.load_dataset(cfg)
            dataset_cold_s = time.perf_counter() - t0
            data_mod.load_dataset.cache_clear()
            shutil.rmtree(cache)
            rows.append(dict(decode_s=decode_s, mmap_s=mmap_s, dataset_cold_s=dataset_cold_s,
                             dataset_cached_s=dataset_cached_s))
            print(f"round {r + 1}: decode {decode_s:.2f} s ({args.images / decode_s:.0f} img/s), "
                  f"cached {mmap_s * 1000:.1f} ms; load_dataset cold {dataset_cold_s:.2f} s, "
                  f"cached {dataset_cached_s:.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return dict(images=args.images, classes=args.classes, input_size=args.size,
                folder_mb=round(nbytes / 1e6, 1), rounds=rows, median=med,
                decode_images_per_s=args.images / med["decode_s"],
                cached_over_decode_speedup=med["decode_s"] / med["mmap_s"],
                dataset_speedup=med["dataset_cold_s"] / med["dataset_cached_s"])


def bench_precision(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from mnas.training.data import DataConfig
    from mnas.training.trainer import TrainConfig, train_child
    from search_spaces import reference_arch

    arch = reference_arch("mobilenet_v2", 0.5, stem_stride=1)
    base = TrainConfig(data=DataConfig(name="synthetic", synthetic_samples=1024, num_classes=10,
                                       input_size=32), steps=args.steps, batch_size=64,
                       threads=1, bn_recalibration=0)
    rows: dict[str, list[float]] = {"fp32": [], "bf16": [], "fp16": []}
    for r in range(args.rounds):
        for precision in (rows if r % 2 == 0 else reversed(list(rows))):
            result = train_child(arch, replace(base, precision=precision))
            rows[precision].append(result.images_per_s)
            print(f"round {r + 1} {precision}: {result.images_per_s:.0f} img/s", flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    return dict(arch="mobilenet_v2@0.5 s1", input_size=32, threads=1, steps=args.steps,
                torch=torch.__version__, images_per_s=rows, median=med,
                over_fp32={k: med[k] / med["fp32"] for k in med})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("imagefolder", "precision"))
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    result = bench_imagefolder(args) if args.mode == "imagefolder" else bench_precision(args)
    result.update(command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                  machine=dict(cpus=os.cpu_count(), platform=platform.platform(),
                               note="shared 2-core VM; other jobs running"))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"data_{args.mode}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("rounds", "images_per_s")},
                     indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
