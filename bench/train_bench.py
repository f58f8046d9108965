"""Child-training benchmarks (timings are noisy here: everything is compared side by side, ABAB).

  throughput     images/s of `train_child` vs a bare PyTorch loop (same model, data, optimiser,
                 batch, memory format); target: median ratio >= 0.95.
  channels-last  images/s of `train_child` with channels_last on vs off, per input size (the
                 measurement behind `channels_last: auto`).
  accuracy       proxy accuracy and time per child of reference networks at the default budget.

  .venv/bin/python bench/train_bench.py throughput [--rounds 4]
  .venv/bin/python bench/train_bench.py channels-last
  .venv/bin/python bench/train_bench.py accuracy [--cifar PATH]

Writes bench/results/train_<mode>.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mnas.training.data import DataConfig, load_dataset
from mnas.training.trainer import TrainConfig, train_child, use_channels_last
from search_spaces import ArchSpec, build_model, reference_arch

RESULTS = Path(__file__).resolve().parent / "results"
QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg-train.npz"


def bare_loop(arch: ArchSpec, cfg: TrainConfig) -> float:
    """The plainest fast PyTorch loop over the same tensors: images/s of the training loop."""
    data = load_dataset(cfg.data)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = build_model(arch, data.num_classes, data.in_channels)
    cl = use_channels_last(cfg)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    n, bs = len(data.train_y), cfg.batch_size
    perm = torch.randperm(n)
    model.train()
    start = time.perf_counter()
    for step in range(cfg.steps or 1):
        i = step % (n // bs)
        idx = perm[i * bs:(i + 1) * bs]
        x, y = data.train_x[idx], data.train_y[idx]
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (cfg.steps or 1) * bs / (time.perf_counter() - start)


def _cases(cifar: Path | None) -> list[tuple[str, ArchSpec, DataConfig]]:
    cases = [("mnasnet_a1 s1 / digits 8x8", reference_arch("mnasnet_a1", stem_stride=1),
              DataConfig())]
    if cifar is not None:
        cases.append(("mobilenet_v2@0.5 s1 / cifar10 32x32",
                      reference_arch("mobilenet_v2", 0.5, stem_stride=1),
                      DataConfig(name="cifar10", path=str(cifar), max_train=4000,
                                 max_val=500)))
    return cases


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for label, arch, data in _cases(args.cifar):
        cfg = TrainConfig(data=data, steps=args.steps, threads=args.threads, augment=False,
                          bn_recalibration=0, eval_batch_size=500)
        ours, bare = [], []
        for _ in range(args.rounds):  # ABAB
            ours.append(train_child(arch, cfg).images_per_s)
            bare.append(bare_loop(arch, cfg))
        aug = [train_child(arch, replace(cfg, augment=True)).images_per_s
               for _ in range(max(1, args.rounds // 2))]
        ratios = [a / b for a, b in zip(ours, bare)]
        rows.append(dict(case=label, steps=args.steps, threads=args.threads,
                         train_child_img_s=ours, bare_img_s=bare, ratios=ratios,
                         median_ratio=statistics.median(ratios),
                         train_child_augment_img_s=aug,
                         augment_over_bare=statistics.median(aug) / statistics.median(bare)))
        print(f"{label:40s} train_child {statistics.median(ours):7.0f} img/s  bare "
              f"{statistics.median(bare):7.0f} img/s  median ratio {rows[-1]['median_ratio']:.3f}"
              f"  (augment on: {rows[-1]['augment_over_bare']:.3f})", flush=True)
    return dict(mode="throughput", rows=rows)


def channels_last(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    archs = [("mnasnet_a1 s1", reference_arch("mnasnet_a1", stem_stride=1)),
             ("mobilenet_v2@0.5 s1", reference_arch("mobilenet_v2", 0.5, stem_stride=1))]
    for size in (8, 16, 32):
        data = DataConfig(input_size=size, max_train=64 * args.steps)
        for label, arch in archs:
            cfg = TrainConfig(data=data, steps=args.steps, threads=args.threads,
                              bn_recalibration=0)
            on, off = [], []
            for _ in range(args.rounds):
                on.append(train_child(arch, replace(cfg, channels_last="on")).images_per_s)
                off.append(train_child(arch, replace(cfg, channels_last="off")).images_per_s)
            ratio = statistics.median([a / b for a, b in zip(on, off)])
            rows.append(dict(arch=label, input_size=size, on_img_s=on, off_img_s=off,
                             median_on_over_off=ratio))
            print(f"{label:22s} {size:3d}px  on {statistics.median(on):6.0f}  off "
                  f"{statistics.median(off):6.0f} img/s  on/off {ratio:.2f}", flush=True)
    return dict(mode="channels-last", threads=args.threads, steps=args.steps, rows=rows)


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    archs = [("mnasnet_a1", 1.0), ("mnasnet_b1", 1.0), ("mobilenet_v2", 0.5),
             ("mobilenet_v2", 1.0)]
    setups = [("digits 8x8", DataConfig(), TrainConfig(threads=args.threads), 1)]
    if args.quickstart:
        from mnas.config.schema import load_config
        quick = replace(load_config(QUICKSTART).child_training, threads=args.threads)
        setups.append((f"digits {quick.data.input_size}px, quickstart budget ({quick.epochs:g} ep)",
                       quick.data, quick, 1))
    if args.cifar is not None:
        cifar = DataConfig(name="cifar10", path=str(args.cifar), max_train=args.cifar_train,
                           max_val=2000)
        for stem in args.cifar_stems:
            setups.append((f"cifar10 32x32 ({args.cifar_train} train, {args.cifar_epochs:g} ep)",
                           cifar,
                           TrainConfig(data=cifar, epochs=args.cifar_epochs, batch_size=64, lr=0.05,
                                       threads=args.threads), stem))
    rows = []
    for label, _, cfg, stem in setups:
        for name, width in archs:
            r = train_child(reference_arch(name, width, stem_stride=stem), cfg)
            rows.append(dict(data=label, arch=f"{name}@{width}", stem_stride=stem,
                             config=cfg.to_dict(), **r.to_dict()))
            print(f"{label:28s} {name}@{width:<4} stem {stem}: acc {r.accuracy:.3f}  "
                  f"{r.wall_time_s:6.1f} s/child  {r.images_per_s:5.0f} img/s  {r.status}",
                  flush=True)
    return dict(mode="accuracy", threads=args.threads, rows=rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("throughput", "channels-last", "accuracy"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cifar", type=Path, default=SHARED_CIFAR if SHARED_CIFAR.exists() else None)
    p.add_argument("--cifar-train", type=int, default=5000)
    p.add_argument("--cifar-epochs", type=float, default=1.0)
    p.add_argument("--out-suffix", default="", help="appended to the result file name")
    p.add_argument("--cifar-stems", type=int, nargs="+", default=[1])
    p.add_argument("--quickstart", action="store_true",
                   help="accuracy: also train at experiments/quickstart.yaml's child budget")
    p.add_argument("--no-cifar", action="store_true", help="accuracy: skip the CIFAR-10 rows")
    args = p.parse_args(argv)
    if args.no_cifar:
        args.cifar = None
    start = time.perf_counter()
    result = dict(throughput=throughput, accuracy=accuracy)\
        .get(args.mode, channels_last)(args)
    result.update(seconds=round(time.perf_counter() - start, 1), torch=torch.__version__,
                  cpus=os.cpu_count(), load_avg=os.getloadavg(), argv=sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"train_{args.mode.replace('-', '_')}{args.out_suffix}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
