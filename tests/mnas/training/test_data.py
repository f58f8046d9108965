"""mnas.training.data: configs, loaders, split, resize, errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mnas.config.loader import load_section
from mnas.training.data import DataConfig, load_dataset, read_arrays, stratified_split

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"


@pytest.mark.parametrize("kwargs, field", [
    (dict(name="imagenet"), "name"),
    (dict(name="npz"), "path"),
    (dict(input_size=0), "input_size"),
    (dict(val_fraction=1.0), "val_fraction"),
    (dict(max_train=0), "max_train"),
    (dict(num_classes=1), "num_classes"),
    (dict(flip="yes"), "flip"),
])
def test_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    """Through the config loader, which checks types; `__post_init__` keeps the ranges."""
    with pytest.raises(ValueError, match=rf"^child_training\.data\.{field}: "):
        load_section(DataConfig, kwargs, "child_training.data")


def test_digits_split_is_stratified_seeded_and_normalised() -> None:
    d = load_dataset(DataConfig())
    assert d.train_x.shape[1:] == (1, 8, 8) and d.num_classes == 10 and not d.flip
    assert len(d.train_y) + len(d.val_y) == 1797
    assert abs(len(d.val_y) - 0.2 * 1797) < 10
    counts = torch.bincount(d.val_y, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37  # every class ~20 % held out
    assert abs(float(d.train_x.mean())) < 1e-4 and abs(float(d.train_x.std()) - 1) < 1e-2
    assert load_dataset(DataConfig()) is d  # cached per process
    other = load_dataset(DataConfig(split_seed=1))
    assert not torch.equal(other.val_y, d.val_y) or not torch.equal(other.val_x, d.val_x)


def test_split_disjoint_and_covers() -> None:
    labels = np.repeat(np.arange(5), 7)
    train, val = stratified_split(labels, 0.3, seed=3)
    assert len(set(train) & set(val)) == 0
    assert sorted(np.concatenate([train, val])) == list(range(35))
    assert np.all(np.bincount(labels[val]) == 2)


def test_resize_and_caps() -> None:
    d = load_dataset(DataConfig(input_size=16, max_train=100, max_val=50))
    assert d.train_x.shape == (100, 1, 16, 16) and d.val_x.shape == (50, 1, 16, 16)
    assert torch.bincount(d.train_y, minlength=10).min() >= 9


def test_prepare_matches_the_training_split_preparation() -> None:
    """Images from outside the splits get the training split's resize and normalisation: the
    training split's own raw images come back as its tensors."""
    config = DataConfig(name="synthetic", synthetic_samples=60, input_size=12, val_fraction=0.25)
    data = load_dataset(config)
    images, labels, _ = read_arrays(config)
    train_idx, val_idx = stratified_split(labels, config.val_fraction, config.split_seed)
    assert torch.allclose(data.prepare(images[train_idx]), data.train_x, atol=1e-5)
    assert torch.allclose(data.prepare(images[val_idx]), data.val_x, atol=1e-5)


def test_synthetic_shapes() -> None:
    d = load_dataset(DataConfig(name="synthetic", synthetic_samples=60, num_classes=3,
                                input_size=12))
    assert d.train_x.shape[1:] == (3, 12, 12) and d.num_classes == 3


def _write_npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


def test_user_npz_loads_nhwc_and_nhw(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 10, 10, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    d = load_dataset(DataConfig(name="npz", path=_write_npz(tmp_path / "a.npz", images=x,
                                                            labels=y)))
    assert d.train_x.shape[1:] == (3, 10, 10) and d.num_classes == 4
    d = load_dataset(DataConfig(name="npz", path=_write_npz(tmp_path / "b.npz", x=x[..., 0],
                                                            y=y)))
    assert d.in_channels == 1


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((4, 5, 5), np.float32), y=np.arange(4)), "expected uint8 images"),
    (dict(x=np.zeros((4, 5), np.uint8), y=np.arange(4)), "NxHxW"),
    (dict(x=np.zeros((4, 5, 5), np.uint8), y=np.arange(3)), "expected 4 labels"),
    (dict(x=np.zeros((4, 5, 5), np.uint8), y=np.array([0, 1, -1, 2])), "labels in 0.."),
    (dict(images=np.zeros((4, 5, 5), np.uint8)), "expected arrays x/images"),
])
def test_bad_npz_one_line_error_naming_path(tmp_path: Path, arrays: dict, message: str) -> None:
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message) as info:
        read_arrays(DataConfig(name="npz", path=path))
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_mnist_labels_out_of_range(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "m.npz", x_train=np.zeros((4, 5, 5), np.uint8),
                      y_train=np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match=r"labels in 0\.\.9"):
        read_arrays(DataConfig(name="mnist", path=path))


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        read_arrays(DataConfig(name="npz", path=str(tmp_path / "nope.npz")))
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        read_arrays(DataConfig(name="cifar10", path=str(tmp_path)))


def test_cifar_python_batches(tmp_path: Path) -> None:
    import pickle
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 255, (6, 3072), dtype=np.uint8),
                 b"labels": list(range(6))}
        (tmp_path / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    images, labels, k = read_arrays(DataConfig(name="cifar10", path=str(tmp_path)))
    assert images.shape == (30, 32, 32, 3) and k == 10 and list(labels[:6]) == list(range(6))
    raw = pickle.loads((tmp_path / "data_batch_1").read_bytes())[b"data"][0]
    assert np.array_equal(images[0, :, :, 0].ravel(), raw[:1024])  # red plane first


def test_jpeg_npz_decoded_and_cached(tmp_path: Path) -> None:
    import io
    from PIL import Image
    rng = np.random.default_rng(0)
    blobs, labels = [], np.arange(6) % 3
    for _ in range(6):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, "PNG")
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    path = _write_npz(tmp_path / "j.npz", jpeg=np.concatenate(blobs), offsets=offsets,
                      labels=labels.astype(np.uint8))
    cfg = DataConfig(name="cifar10", path=path, cache_dir=str(tmp_path / "cache"))
    first, y, _ = read_arrays(cfg)
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert first.shape == (6, 8, 8, 3) and len(cached) == 1
    assert not [p for p in os.listdir(tmp_path / "cache") if p.endswith(".tmp")]
    again, _, _ = read_arrays(cfg)
    assert np.array_equal(first, again)


@pytest.mark.skipif(not (SHARED / "mnist.npz").exists(), reason="shared data absent")
def test_shared_mnist() -> None:
    d = load_dataset(DataConfig(name="mnist", path=str(SHARED / "mnist.npz"), max_train=500,
                                max_val=100))
    assert d.train_x.shape == (500, 1, 28, 28) and d.num_classes == 10


def test_cifar_batches_refuse_pickles_that_name_other_globals(tmp_path: Path) -> None:
    """A tampered CIFAR-10 batch cannot run code: only numpy array globals are unpickled."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 255, (6, 3072), dtype=np.uint8),
                 b"labels": list(range(6))}
        (tmp_path / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    images, _, _ = read_arrays(DataConfig(name="cifar10", path=str(tmp_path)))  # protocol 2 ok
    assert images.shape == (30, 32, 32, 3)
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(ValueError, match=r"data_batch_3: not a CIFAR-10 python batch .*system"):
        read_arrays(DataConfig(name="cifar10", path=str(tmp_path)))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "cifar10-jpeg-train.npz").exists(), reason="shared data absent")
def test_shared_cifar10(tmp_path: Path) -> None:
    d = load_dataset(DataConfig(name="cifar10", path=str(SHARED / "cifar10-jpeg-train.npz"),
                                input_size=32, max_train=1000, max_val=200,
                                cache_dir=str(tmp_path)))
    assert d.train_x.shape == (1000, 3, 32, 32) and d.num_classes == 10 and d.flip
    assert torch.bincount(d.train_y, minlength=10).min() >= 90  # stratified
