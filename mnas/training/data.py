"""Image-classification data for child training, held in memory as tensors.

Why in memory: a search trains thousands of children on the same proxy data in one long-lived
worker, so data are loaded, split, resized and normalised once per process (an lru cache keyed by
the frozen `DataConfig`) and every child only indexes tensors.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnas.config.loader import check, require
from mnas.training.imagefolder import cache_root, load_imagefolder, scan

#: Data-set names `DataConfig.name` accepts.
DATASETS = ("digits", "synthetic", "mnist", "cifar10", "npz", "imagefolder")


@dataclass(frozen=True)
class DataConfig:
    """Which data set, how it is split and resized. All fields are YAML-friendly plain types.

    `name`: "digits" (scikit-learn's bundled 8x8 digits, offline), "synthetic" (random tensors, for
    tests), "mnist" (.npz with x_train/y_train), "cifar10" (python batches directory, or an .npz:
    x/y arrays or the JPEG npz with jpeg/offsets/labels), "npz" (any uint8 images + int labels),
    "imagefolder" (`path` holds one subfolder of JPEG/PNG/WebP images per class; decoded once
    and cached, see `mnas.training.imagefolder`).
    `input_size`: square side the images are resized to once up front (None = native size;
    required for imagefolder). `val_path`: an image folder with the validation split (same
    class names; imagefolder only); without it, `val_fraction`/`split_seed`: the stratified
    train/validation split drawn from training data (the search never sees a test split).
    `max_train`/`max_val`: cap the split sizes (None = all).
    `synthetic_samples`/`num_classes`: size and classes of the synthetic set (ignored otherwise).
    `flip`: random horizontal flips when augmenting; None = by data set (cifar10, imagefolder).
    `cache_dir`: where decoded JPEG arrays and image folders are cached (None = ~/.cache/mnas).
    """

    name: str = "digits"
    path: str | None = None
    input_size: int | None = None
    val_fraction: float = 0.2
    split_seed: int = 0
    max_train: int | None = None
    max_val: int | None = None
    synthetic_samples: int = 512
    num_classes: int = 10
    flip: bool | None = None
    cache_dir: str | None = None
    val_path: str | None = None

    def __post_init__(self) -> None:
        """Ranges and cross-field rules only: types are the config loader's."""
        check(self.name in DATASETS, "name", f"one of {', '.join(DATASETS)}", self.name)
        require(self.name not in DATA_WITH_PATH or bool(self.path), "path",
                f"required for data set {self.name!r} (a file or directory)")
        require(self.val_path is None or self.name == "imagefolder", "val_path",
                "only for data set 'imagefolder' (others split off validation with "
                "val_fraction)")
        require(self.name != "imagefolder" or self.input_size is not None, "input_size",
                "required for data set 'imagefolder' (images differ in size)")
        check(self.input_size is None or self.input_size >= 1, "input_size",
              "an integer >= 1 or null", self.input_size)
        check(0 < self.val_fraction < 1, "val_fraction", "a number strictly between 0 and 1",
              self.val_fraction)
        for name in ("max_train", "max_val"):
            value = getattr(self, name)
            check(value is None or value >= 1, name, "an integer >= 1 or null", value)
        check(self.synthetic_samples >= 2, "synthetic_samples", "an integer >= 2",
              self.synthetic_samples)
        check(self.num_classes >= 2, "num_classes", "an integer >= 2", self.num_classes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Data sets read from `path` (the others are bundled or generated).
DATA_WITH_PATH = ("mnist", "cifar10", "npz", "imagefolder")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded, split, resized and normalised data set: float32 NCHW tensors in memory.

    Normalisation uses per-channel mean/std of the training split only (no constants per data set,
    and nothing learnt from validation images). `flip` says whether horizontal flips are a valid
    augmentation for these images (not for digits or MNIST, where a flip changes the class).
    `mean`/`std`: that normalisation (per channel, shaped 1xCx1x1), kept for `prepare`."""

    name: str
    train_x: "torch.Tensor"
    train_y: "torch.Tensor"
    val_x: "torch.Tensor"
    val_y: "torch.Tensor"
    num_classes: int
    flip: bool
    mean: "torch.Tensor | None" = None
    std: "torch.Tensor | None" = None

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[-1])

    def prepare(self, images: np.ndarray) -> torch.Tensor:
        """Images from outside the splits (uint8 NxHxW or NxHxWxC, e.g. a test set) as the
        training split was prepared: resized to this set's input size, normalised with its
        training statistics."""
        if self.mean is None or self.std is None:
            raise ValueError(f"data set {self.name!r}: no normalisation statistics kept")
        return _to_nchw_float(images, self.input_size).sub_(self.mean).div_(self.std)


@lru_cache(maxsize=4)
def load_dataset(config: DataConfig) -> Dataset:
    """Load, split, resize and normalise once per process (cached by the frozen config): a search
    trains many children in one long-lived worker. Callers must not modify the tensors."""
    images, labels, num_classes = read_arrays(config)
    if config.input_size is None and images.shape[1] != images.shape[2]:
        raise ValueError(f"child_training.data.input_size: required for non-square images "
                         f"({images.shape[1]}x{images.shape[2]} in {config.path})")
    if config.val_path is not None:  # a given validation split, appended after training images
        val_images, val_labels = read_val_arrays(config)
        images, n_train = np.concatenate([images, val_images]), len(labels)
        labels = np.concatenate([labels, val_labels])
        train_idx, val_idx = np.arange(n_train), np.arange(n_train, len(labels))
    else:
        train_idx, val_idx = stratified_split(labels, config.val_fraction, config.split_seed)
    train_idx = _cap(train_idx, labels, config.max_train, config.split_seed)
    val_idx = _cap(val_idx, labels, config.max_val, config.split_seed + 1)
    x = _to_nchw_float(images, config.input_size)
    train_x, val_x = x[torch.from_numpy(train_idx)], x[torch.from_numpy(val_idx)]
    del x
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    train_x.sub_(mean).div_(std)
    val_x.sub_(mean).div_(std)
    y = torch.from_numpy(labels.astype(np.int64))
    flip = config.flip if config.flip is not None else config.name in ("cifar10", "imagefolder")
    return Dataset(config.name, train_x.contiguous(), y[train_idx], val_x.contiguous(), y[val_idx],
                   num_classes, flip, mean, std)


def stratified_split(labels: np.ndarray, val_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: each class contributes round(val_fraction * n_class) images (at
    least one, and at least one left for training) to validation. Both index arrays are sorted."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = min(max(1, round(val_fraction * len(idx))), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    if not val or sum(len(t) for t in train) == 0:
        raise ValueError("data set too small to split into train and validation")
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _cap(idx: np.ndarray, labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Keep at most `limit` indices, class-balanced: within each class take a seeded random order,
    then interleave classes by rank fraction so any prefix is close to stratified."""
    if limit is None or limit >= len(idx):
        return idx
    rng = np.random.default_rng(seed)
    keys = np.empty(len(idx))
    sub = labels[idx]
    for cls in np.unique(sub):
        where = np.flatnonzero(sub == cls)
        keys[where] = (rng.permutation(len(where)) + 0.5) / len(where)
    return np.sort(idx[np.argsort(keys, kind="stable")[:limit]])


def _to_nchw_float(images: np.ndarray, size: int | None) -> torch.Tensor:
    """uint8 NHW / NHWC -> float32 NCHW in [0, 1], resized once up front (bilinear, antialiased
    when shrinking), in chunks to bound peak memory. Each chunk is copied out of `images` first:
    a memory-mapped cache is read-only, and torch wants writable arrays."""
    n, h, w = images.shape[:3]
    c = 1 if images.ndim == 3 else images.shape[3]
    size_h, size_w = (h, w) if size is None else (size, size)
    out = torch.empty(n, c, size_h, size_w)
    for start in range(0, n, 4096):
        chunk = torch.from_numpy(np.array(images[start:start + 4096]))
        chunk = chunk.unsqueeze(1) if chunk.ndim == 3 else chunk.permute(0, 3, 1, 2)
        chunk = chunk.float().div_(255.0)
        if (size_h, size_w) != (h, w):
            chunk = F.interpolate(chunk, size=(size_h, size_w), mode="bilinear",
                                  align_corners=False, antialias=size_h < max(h, w))
        out[start:start + 4096] = chunk
    return out


def read_arrays(config: DataConfig, *,
                progress: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """Raw training images (uint8, NxHxW or NxHxWxC) and labels, validated, with the class count.
    `progress`: a bar where decoding takes long (image folders), on a terminal."""
    if config.name == "synthetic":
        return _synthetic(config)
    if config.name == "digits":
        return _digits()
    path = Path(config.path or "").expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory (data set {config.name!r})")
    if config.name == "imagefolder":
        folder = load_imagefolder(str(path), int(config.input_size or 0), config.cache_dir,
                                  progress=progress)
        return folder.images, folder.labels, len(folder.classes)
    if config.name == "cifar10":
        images, labels = (_cifar_batches(path) if path.is_dir()
                          else _cifar_npz(path, config.cache_dir))
        return _validated(path, images, labels, expected_classes=10)
    if config.name == "mnist":
        images, labels = _npz_arrays(path, ("x_train", "x", "images"), ("y_train", "y", "labels"))
        return _validated(path, images, labels, expected_classes=10)
    images, labels = _npz_arrays(path, ("x", "images"), ("y", "labels"))
    return _validated(path, images, labels, expected_classes=None)


def read_val_arrays(config: DataConfig, *,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of `val_path`, labelled by the training folder's class names."""
    path = Path(config.val_path or "").expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such directory (child_training.data.val_path)")
    classes, _files = scan(Path(config.path or "").expanduser())
    folder = load_imagefolder(str(path), int(config.input_size or 0), config.cache_dir,
                              progress=progress, classes=classes)
    return folder.images, folder.labels


def _synthetic(config: DataConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """Random images whose class shifts the mean brightness of a class-specific patch, so a model
    can learn something (tests check training improves on chance)."""
    rng = np.random.default_rng(config.split_seed)
    n, k, size = config.synthetic_samples, config.num_classes, config.input_size or 16
    labels = np.arange(n) % k
    images = rng.integers(0, 128, size=(n, size, size, 3), dtype=np.int64)
    rows = (labels * size // k)[:, None]
    band = np.arange(size)[None, :]
    mask = (band >= rows) & (band < rows + max(1, size // k))
    images += 127 * mask[:, :, None, None]
    return images.astype(np.uint8), labels, k


def _digits() -> tuple[np.ndarray, np.ndarray, int]:
    """scikit-learn's bundled 8x8 digits (values 0..16), shipped inside the package: offline."""
    from sklearn.datasets import load_digits  # lazy: only this data set needs scikit-learn
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int64), 10


def _npz_arrays(path: Path, x_keys: tuple[str, ...],
                y_keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    if path.is_dir():
        raise ValueError(f"{path}: expected an .npz file, got a directory")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            xk = next((k for k in x_keys if k in files), None)
            yk = next((k for k in y_keys if k in files), None)
            if xk is None or yk is None:
                raise ValueError(f"{path}: expected arrays {'/'.join(x_keys)} and "
                                 f"{'/'.join(y_keys)}, found {', '.join(sorted(files)) or 'none'}")
            return npz[xk], npz[yk]
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a readable .npz file (bad zip)") from None


def _validated(path: Path, images: np.ndarray, labels: np.ndarray,
               expected_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Check shapes, dtypes and label range; one-line errors naming the path."""
    if images.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 images, got dtype {images.dtype}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise ValueError(f"{path}: expected images shaped NxHxW or NxHxWxC with C in (1, 3), "
                         f"got {images.shape}")
    if len(images) == 0 or min(images.shape[1:3]) < 1:
        raise ValueError(f"{path}: expected a non-empty set of images, got shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{path}: expected {len(images)} labels in a 1-D array, "
                         f"got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: expected integer labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    top = int(labels.max()) + 1 if len(labels) else 0
    limit = expected_classes or top
    if len(labels) < 2 or labels.min() < 0 or top > limit:
        raise ValueError(f"{path}: expected at least 2 labels in 0..{limit - 1}, got "
                         f"{len(labels)} labels in {labels.min() if len(labels) else '-'}.."
                         f"{top - 1}")
    if limit < 2:
        raise ValueError(f"{path}: expected at least 2 classes, got {limit}")
    return images, labels, limit


#: The only globals a CIFAR-10 python batch may name: numpy array reconstruction (numpy 1.x and
#: 2.x module names) and `_codecs.encode` (bytes in protocol-2 pickles). Nothing that runs code.
_CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")})


def _load_cifar_pickle(path: Path) -> object:
    """Unpickle one CIFAR-10 batch with an allow-list of globals (`_CIFAR_PICKLE_GLOBALS`): a
    file that names anything else (e.g. os.system) is refused, not executed."""
    import pickle

    class _Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) not in _CIFAR_PICKLE_GLOBALS:
                raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
            return super().find_class(module, name)

    try:
        with path.open("rb") as fh:
            return _Restricted(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({exc})") from None


def _cifar_batches(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The official CIFAR-10 python directory (data_batch_1..5). Those files are pickles (the
    data set's published format); they are read by a restricted unpickler that only rebuilds
    numpy arrays and refuses any other global, so a tampered file cannot run code."""
    files = [path / f"data_batch_{i}" for i in range(1, 6)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: expected the CIFAR-10 python batches data_batch_1..5, "
                                f"missing {', '.join(missing)}")
    images, labels = [], []
    for f in files:
        batch = _load_cifar_pickle(f)
        if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
            raise ValueError(f"{f}: expected a CIFAR-10 batch with b'data' and b'labels'")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"]))
    return np.concatenate(images).transpose(0, 2, 3, 1).copy(), np.concatenate(labels)


def _cifar_npz(path: Path, cache_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """An .npz with x/y arrays, or the JPEG form (jpeg, offsets, labels), decoded once with Pillow
    and cached as .npy (atomically) because decoding 50,000 images takes seconds."""
    with np.load(path, allow_pickle=False) as npz:
        if {"jpeg", "offsets", "labels"} <= set(npz.files):
            labels = npz["labels"]
            cache = _jpeg_cache_path(path, cache_dir)
            if cache.is_file():
                images = np.load(cache, allow_pickle=False)
                if images.shape[0] == len(labels):
                    return images, labels
            images = _decode_jpegs(path, npz["jpeg"], npz["offsets"])
            _atomic_save_npy(cache, images)
            return images, labels
    return _npz_arrays(path, ("x_train", "x", "images"), ("y_train", "y", "labels"))


def _decode_jpegs(path: Path, blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image  # lazy: only the JPEG npz form needs Pillow
    if offsets.ndim != 1 or len(offsets) < 2 or offsets[-1] > len(blob):
        raise ValueError(f"{path}: expected 'offsets' of N+1 byte positions into 'jpeg'")
    data = blob.tobytes()
    first = np.asarray(Image.open(io.BytesIO(data[offsets[0]:offsets[1]])).convert("RGB"))
    out = np.empty((len(offsets) - 1, *first.shape), dtype=np.uint8)
    for i in range(len(offsets) - 1):
        img = Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]])).convert("RGB")
        if img.size != (first.shape[1], first.shape[0]):
            raise ValueError(f"{path}: image {i} is {img.size}, expected {first.shape[1::-1]}")
        out[i] = np.asarray(img)
    return out


def _jpeg_cache_path(path: Path, cache_dir: str | None) -> Path:
    """Cache file named by the source's resolved path, size and mtime: a changed source misses."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    return cache_root(cache_dir) / f"{path.stem}-{key[:16]}.npy"


def _atomic_save_npy(target: Path, array: np.ndarray) -> None:
    """Temp file in the same directory + os.replace: readers never see a partial cache. A cache
    that cannot be written is not an error (the data are already decoded)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is as shareable as the source
        os.replace(tmp, target)
    except OSError:
        if "tmp" in locals() and os.path.exists(tmp):
            os.unlink(tmp)
