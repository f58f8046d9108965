"""Image-classification data for child training, held in memory as tensors.

Why in memory: a search trains thousands of children on the same proxy data in one long-lived
worker, so data are loaded, split, resized and normalised once per process (an lru cache keyed by
the frozen `DataConfig`) and every child only indexes tensors.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

#: Data-set names `DataConfig.name` accepts.
DATASETS = ("digits", "synthetic", "mnist", "cifar10", "npz")


def _fail(field: str, expected: str, value: object) -> None:
    raise ValueError(f"child_training.data.{field}: {expected}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Which data set, how it is split and resized. All fields are YAML-friendly plain types.

    `name`: "digits" (scikit-learn's bundled 8x8 digits, offline), "synthetic" (random tensors, for
    tests), "mnist" (.npz with x_train/y_train), "cifar10" (python batches directory, or an .npz:
    x/y arrays or the JPEG npz with jpeg/offsets/labels), "npz" (any uint8 images + int labels).
    `input_size`: square side the images are resized to once up front (None = native size).
    `val_fraction`/`split_seed`: the stratified train/validation split drawn from training data
    (the search never sees a test split). `max_train`/`max_val`: cap the split sizes (None = all).
    `synthetic_samples`/`num_classes`: size and classes of the synthetic set (ignored otherwise).
    `flip`: random horizontal flips when augmenting; None = by data set (only cifar10).
    `cache_dir`: where decoded JPEG arrays are cached (None = ~/.cache/mnas).
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

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            _fail("name", f"must be one of {', '.join(DATASETS)}", self.name)
        if self.name in ("mnist", "cifar10", "npz") and not self.path:
            _fail("path", f"required for data set {self.name!r} (a file or directory)", self.path)
        if self.path is not None and not isinstance(self.path, str):
            _fail("path", "must be a string", self.path)
        if self.input_size is not None and (not _is_int(self.input_size) or self.input_size < 1):
            _fail("input_size", "must be an integer >= 1 or null", self.input_size)
        if not isinstance(self.val_fraction, (int, float)) or not 0 < self.val_fraction < 1:
            _fail("val_fraction", "must be a number strictly between 0 and 1", self.val_fraction)
        if not _is_int(self.split_seed):
            _fail("split_seed", "must be an integer", self.split_seed)
        for field in ("max_train", "max_val"):
            value = getattr(self, field)
            if value is not None and (not _is_int(value) or value < 1):
                _fail(field, "must be an integer >= 1 or null", value)
        if not _is_int(self.synthetic_samples) or self.synthetic_samples < 2:
            _fail("synthetic_samples", "must be an integer >= 2", self.synthetic_samples)
        if not _is_int(self.num_classes) or self.num_classes < 2:
            _fail("num_classes", "must be an integer >= 2", self.num_classes)
        if self.flip is not None and not isinstance(self.flip, bool):
            _fail("flip", "must be true, false or null", self.flip)
        if self.cache_dir is not None and not isinstance(self.cache_dir, str):
            _fail("cache_dir", "must be a string or null", self.cache_dir)

    def to_dict(self) -> dict:
        return asdict(self)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
