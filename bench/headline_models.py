"""The headline benchmark's models and their final training (`bench/headline.py` runs the stages).

Data the final comparison uses, all from the shared CIFAR-10 training split (50,000 images):
the search split (80%, stratified, seed 0) is all any choice ever sees: it trains the supernet,
scores the children and trains the final models. The held-out 20% only evaluates final models;
with `--carve-extra F` a stratified, seeded fraction F of it becomes the extra set
(`<work>/extra.npz`) and the held-out figure uses the rest. `--extra PATH` names a real extra set
instead. Each final model is saved under `<work>/final/<name>-s<seed>/` (`model.onnx`, the
deployment export `mnas train` writes, and `weights.pt`, the state_dict).
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "headline_cifar10.yaml"
#: Baselines: MobileNetV2 at four widths and the two MnasNets at the width of the target (x0.5).
BASELINES = ("mobilenet_v2@0.35", "mobilenet_v2@0.5", "mobilenet_v2@0.75", "mobilenet_v2@1.0",
             "mnasnet_a1@0.5", "mnasnet_b1@0.5")
HOLDOUT_FRACTION, HOLDOUT_SEED = 0.2, 0
CARVE_SEED = 1
FINAL_SEEDS = (0, 1)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@lru_cache(maxsize=1)
def headline_config() -> Any:
    from mnas.config.schema import load_config
    return load_config(CONFIG)


def headline_space() -> Any:
    return headline_config().space


def to_arch(blocks: list[str]) -> Any:
    """Block strings -> ArchSpec with the space's stem stride, head and dropout; a single
    reference name (a family outside the block grammar, e.g. `shufflenet_v2@0.5`) -> that
    network at stem stride 1."""
    from search_spaces import decode_arch, reference_network_names
    if len(blocks) == 1 and blocks[0].partition("@")[0] in reference_network_names():
        return reference(blocks[0])
    space = headline_space()
    return decode_arch(blocks, stem_stride=space.stem_stride, head_filters=space.head_filters,
                       dropout=space.dropout)


def reference(name: str) -> Any:
    """A baseline at 32x32: the reference network with stem stride 1, like the space."""
    from search_spaces import reference_network
    base, _, width = name.partition("@")
    return reference_network(base, float(width or 1.0), stem_stride=1)


def searches(methods: list[str], seeds: int, hard_seeds: int) -> Iterator[tuple[str, int, str]]:
    """(method, seed, reward preset) of every search, seed-major: an interruption leaves every
    method with the same seeds done. The first `hard_seeds` seeds also search with the hard
    reward."""
    for seed in range(seeds):
        for method in methods:
            yield method, seed, "soft"
            if seed < hard_seeds:
                yield method, seed, "hard"


def search_name(method: str, seed: int, preset: str) -> str:
    return f"{method}-s{seed}" if preset == "soft" else f"{method}-{preset}-s{seed}"


def search_dir(work: Path, method: str, seed: int, preset: str = "soft") -> Path:
    return work / f"search-{search_name(method, seed, preset)}"


def history(run_dir: Path) -> list[Any]:
    from mnas.search.history import load_history
    from mnas.search.rundir import RunDir

    return load_history(RunDir(run_dir).history)


def final_models(work: Path, runs: list[tuple[str, int, str]],
                 matched: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Name, kind and block strings (a family's reference name) of every model in the final
    comparison: the baselines, the families at matched latency, the best of every search."""
    from mnas.search.ranking import best, candidates
    from search_spaces import network_strings
    models: list[dict[str, Any]] = [
        {"name": b, "kind": "baseline", "blocks": network_strings(reference(b))}
        for b in BASELINES + tuple(m for m in matched if m not in BASELINES)]
    for method, seed, preset in runs:
        top = best(candidates(history(search_dir(work, method, seed, preset))))
        if top is None:
            raise SystemExit(f"headline: {search_dir(work, method, seed, preset)}: no scored "
                             "child (rerun to resume the search)")
        models.append({"name": search_name(method, seed, preset), "kind": "searched",
                       "method": method, "preset": preset, "search_seed": seed,
                       "blocks": list(top.arch), "search_reward": top.reward,
                       "proxy_accuracy": top.accuracy, "predicted_ms": top.latency_ms})
    return models


def carve_split(held_labels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (within the held-out split) that stay held out, and those carved into the extra
    set: stratified and seeded, so the data stage and every final training agree."""
    from mnas.training.data import stratified_split
    return stratified_split(held_labels, fraction, CARVE_SEED)


def final_data_config(cifar: Path, max_train: int | None) -> Any:
    """Training split = exactly the search split (`stratified_split` of the same labels with the
    same fraction and seed as the data stage); validation = the held-out 20%."""
    from mnas.training.data import DataConfig
    return DataConfig(name="cifar10", path=str(cifar), input_size=32,
                      val_fraction=HOLDOUT_FRACTION, split_seed=HOLDOUT_SEED,
                      max_train=max_train, max_val=None)


def read_extra(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An extra labelled set: any file the cifar10 data set reads (x/y npz, the JPEG npz)."""
    from mnas.training.data import DataConfig, read_arrays
    images, labels, _ = read_arrays(DataConfig(name="cifar10", path=str(path)), progress=False)
    return images, labels


@lru_cache(maxsize=2)
def _eval_sets(cifar: str, max_train: int | None, carve: float,
               extra: str | None) -> tuple[Any, Any, Any]:
    """(data set, held-out x/y, extra x/y or None), once per worker process."""
    import torch
    from mnas.training.data import load_dataset
    data = load_dataset(final_data_config(Path(cifar), max_train))
    held = (data.val_x, data.val_y)
    if carve:
        keep, _ = carve_split(data.val_y.numpy(), carve)
        held = (data.val_x[torch.from_numpy(keep)], data.val_y[torch.from_numpy(keep)])
    if extra is None:
        return data, held, None
    images, labels = read_extra(Path(extra))
    return data, held, (data.prepare(images), torch.from_numpy(labels.astype(np.int64)))


def train_final(job: dict[str, Any]) -> dict[str, Any]:
    """One (model, training seed): the fixed final recipe on the search split; top-1 on the
    held-out images and on the extra set; the model saved as ONNX and state_dict."""
    import torch
    from mnas.fileio import atomic_torch_save
    from mnas.training.trainer import Trainer, TrainConfig, torch_threads
    from search_spaces import build_network, count_macs, count_params
    from search_spaces.onnx_export import export_onnx
    data, held, extra = _eval_sets(job["cifar"], job["max_train"], job["carve"], job["extra"])
    cfg = TrainConfig(data=final_data_config(Path(job["cifar"]), job["max_train"]),
                      epochs=job["epochs"], batch_size=64, lr=0.05, augment=True,
                      seed=job["seed"], threads=1)
    start = time.perf_counter()
    with torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        model = build_network(to_arch(job["blocks"]), num_classes=10,
                              in_channels=data.in_channels)
        params, macs = count_params(model), count_macs(model, data.input_size, data.in_channels)
        trainer = Trainer(model, data, cfg)
        outcome = trainer.train(trainer.total_steps)
        ok = outcome.status == "ok"
        accuracy = trainer.evaluate(*held) if ok else 0.0
        extra_accuracy = trainer.evaluate(*extra) if ok and extra is not None else None
    out = Path(job["out"])
    if ok:
        out.mkdir(parents=True, exist_ok=True)
        model = model.to("cpu", memory_format=torch.contiguous_format)
        export_onnx(model, out / "model.onnx", data.input_size, data.in_channels)
        atomic_torch_save(model.state_dict(), out / "weights.pt")
    return {"name": job["name"], "seed": job["seed"], "status": outcome.status,
            "accuracy": accuracy, "extra_accuracy": extra_accuracy, "train_loss": outcome.loss,
            "epochs": trainer.epochs_done, "params": params, "macs": macs,
            "train_images": len(data.train_y), "heldout_images": len(held[1]),
            "extra_images": None if extra is None else len(extra[1]),
            "wall_time_s": time.perf_counter() - start, "saved": str(out) if ok else None}


def read_final(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stage_final(work: Path, models: list[dict[str, Any]], cifar: Path, epochs: float,
                max_train: int | None, workers: int, carve: float,
                extra: Path | None) -> list[dict[str, Any]]:
    """Every (model, training seed) not yet in final.jsonl, `workers` at a time; each result is
    appended (flushed, fsync'd) as it finishes, so an interruption loses only trainings in
    flight."""
    path = work / "final.jsonl"
    done = read_final(path)
    have = {(r["name"], r["seed"]) for r in done}
    jobs = [{"name": m["name"], "blocks": m["blocks"], "seed": s, "epochs": epochs,
             "max_train": max_train, "cifar": str(cifar), "carve": carve,
             "extra": None if extra is None else str(extra),
             "out": str(work / "final" / f"{m['name']}-s{s}")}
            for s in FINAL_SEEDS for m in models if (m["name"], s) not in have]
    log(f"final: {len(jobs)} trainings to go ({len(have)} done), {workers} at a time")
    if not jobs:
        return done
    with ProcessPoolExecutor(workers) as pool, path.open("a") as out:
        futures = {pool.submit(train_final, job): job for job in jobs}
        failed = []
        for i, future in enumerate(as_completed(futures)):
            try:
                row = future.result()
            except Exception as exc:  # noqa: BLE001 - the others go on; reported below
                job = futures[future]
                failed.append(f"{job['name']} seed {job['seed']}: {type(exc).__name__}: {exc}")
                log(f"final {i + 1}/{len(jobs)}: FAILED {failed[-1]}")
                continue
            out.write(json.dumps(row) + "\n")
            out.flush()
            os.fsync(out.fileno())
            done.append(row)
            extra_acc = "" if row["extra_accuracy"] is None else \
                f", extra {row['extra_accuracy']:.4f}"
            log(f"final {i + 1}/{len(jobs)}: {row['name']} seed {row['seed']}: held-out "
                f"{row['accuracy']:.4f}{extra_acc} in {row['wall_time_s']:.0f} s "
                f"({row['status']})")
    if failed:
        raise SystemExit(f"headline: {len(failed)} final training(s) failed ({failed[0]}); "
                         "rerun to retry them")
    return done
