"""Image folders (`child_training.data.name: imagefolder`): class subfolders of JPEG/PNG/WebP files.

Decoding thousands of images takes minutes; a search reads its data in every worker and on every
resume. So a folder is decoded once (Pillow, shorter side resized to `input_size`, centre crop),
written as a uint8 N x S x S x 3 `.npy` keyed by the folder's contents (relative file names,
sizes, mtimes: a changed folder misses the cache and is re-read) and memory-mapped on later runs.
The cache is written atomically (temp file + os.replace): a reader never sees half of one.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

#: File suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: Bump when the decoded form changes (resize rule, layout): old caches then miss.
CACHE_VERSION = 1
_CHUNK = 256  # images handed to the decoding threads at a time


@dataclass(frozen=True)
class ImageFolder:
    """A decoded folder: `images` (uint8 N x S x S x 3, memory-mapped from the cache), integer
    `labels`, `classes` (subfolder names, label order) and the files that could not be read."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    skipped: tuple[str, ...]


def cache_root(cache_dir: str | None) -> Path:
    """Where decoded data sets are cached (`child_training.data.cache_dir`, else ~/.cache/mnas)."""
    return Path(cache_dir).expanduser() if cache_dir else Path.home() / ".cache" / "mnas"


class Entry(NamedTuple):
    """One image file: its path relative to the folder, label, size and mtime (the cache key)."""

    rel: str
    label: int
    size: int
    mtime_ns: int


def scan(root: Path) -> tuple[tuple[str, ...], list[Entry]]:
    """Class names (sorted subfolders holding images) and their image files, in a fixed order.
    ValueError, naming the folder, when it has no images or only one class."""
    if not root.is_dir():
        raise ValueError(f"{root}: expected a directory of class subfolders")
    per_class: dict[str, list[tuple[str, int, int]]] = {}
    with os.scandir(root) as entries:
        subs = sorted(e.name for e in entries if e.is_dir())
    for name in subs:
        files = sorted(_image_files(root / name, name))
        if files:
            per_class[name] = files
    if not per_class:
        raise ValueError(f"{root}: no images ({'/'.join(IMAGE_SUFFIXES)}) in class subfolders "
                         "(expected ROOT/CLASS/IMAGE)")
    if len(per_class) < 2:
        raise ValueError(f"{root}: expected at least 2 class subfolders with images, found 1 "
                         f"({next(iter(per_class))})")
    classes = tuple(per_class)
    found = [Entry(rel, label, size, mtime) for label, name in enumerate(classes)
             for rel, size, mtime in per_class[name]]
    return classes, found


def _image_files(folder: Path, rel: str) -> Iterator[tuple[str, int, int]]:
    """(relative name, size, mtime) of every image below `folder`: one scandir per directory,
    one stat per file (pathlib's rglob costs several)."""
    with os.scandir(folder) as entries:
        for e in entries:
            if e.is_dir():
                yield from _image_files(Path(e.path), f"{rel}/{e.name}")
            elif os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file():
                st = e.stat()
                yield f"{rel}/{e.name}", st.st_size, st.st_mtime_ns


def content_key(files: list[Entry], size: int) -> str:
    """Hash of every file's relative name, label, size and mtime, plus the decode settings."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}".encode())
    for f in files:
        h.update(f"\n{f.rel}|{f.label}|{f.size}|{f.mtime_ns}".encode())
    return h.hexdigest()[:20]


def decode(path: Path, size: int) -> np.ndarray | None:
    """One image as uint8 size x size x 3 (RGB; shorter side resized, centre crop), or None
    when Pillow cannot read it (corrupt, truncated, not an image, a decompression bomb)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            rgb = img.convert("RGB")
            out = ImageOps.fit(rgb, (size, size), Image.Resampling.BILINEAR)
            return np.asarray(out, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def load_imagefolder(path: str, size: int, cache_dir: str | None, *,
                     progress: bool = True, classes: tuple[str, ...] | None = None) -> ImageFolder:
    """The folder at `path`, from the cache when its contents are unchanged, else decoded (with a
    progress bar on a terminal) and cached. `classes`: the label order to use (a validation
    folder follows its training folder's classes; a class the training folder lacks is an
    error). Unreadable images are skipped and listed in one warning line."""
    root = Path(path).expanduser()
    found, files = scan(root)
    if classes is not None:
        extra = [c for c in found if c not in classes]
        if extra:
            raise ValueError(f"{root}: class subfolder {extra[0]!r} is not a class of the "
                             f"training folder ({', '.join(classes)})")
        files = [f._replace(label=classes.index(found[f.label])) for f in files]
    classes = classes or found
    target = cache_root(cache_dir) / f"imagefolder-{root.name}-{size}px-" \
                                      f"{content_key(files, size)}"
    cached = _read_cache(target, len(files))
    if cached is None:
        cached = _decode_all(root, files, size, target, progress)
    images, labels, skipped = cached
    if skipped:
        shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10
                                           else "")
        print(f"warning: {root}: skipped {len(skipped)} unreadable image(s): {shown}",
              file=sys.stderr, flush=True)
    if len(np.unique(labels)) < 2:
        raise ValueError(f"{root}: expected readable images of at least 2 classes, "
                         f"found {len(np.unique(labels))}")
    return ImageFolder(images, labels, tuple(classes), tuple(skipped))


def _read_cache(target: Path, n_files: int) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """The cached arrays (images memory-mapped), or None when absent or inconsistent."""
    meta_path, npy = target.with_suffix(".json"), target.with_suffix(".npy")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        images = np.load(npy, mmap_mode="r", allow_pickle=False)
        labels = np.asarray(meta["labels"], dtype=np.int64)
        skipped = [str(s) for s in meta["skipped"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if images.shape[0] != len(labels) or len(labels) + len(skipped) != n_files:
        return None
    return images, labels, skipped


def _decode_all(root: Path, files: list[Entry], size: int, target: Path,
                progress: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode into a memory-mapped temp .npy (memory stays flat however large the folder),
    drop unreadable files, then move the cache into place atomically."""
    from mnas.progress import bar

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(target, ".npy")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(len(files), size, size, 3))
        ok = np.zeros(len(files), dtype=bool)
        with bar(len(files), "decode", "img", enabled=progress) as pbar, \
                ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for start in range(0, len(files), _CHUNK):  # Pillow decodes without the GIL
                chunk = files[start:start + _CHUNK]
                for i, img in enumerate(pool.map(lambda f: decode(root / f.rel, size), chunk)):
                    if img is not None:
                        out[start + i], ok[start + i] = img, True
                pbar.update(len(chunk))
        skipped = [f.rel for f, good in zip(files, ok) if not good]
        if skipped:
            tmp = _compact(out, ok, target, tmp)
        out.flush()
        del out
        labels = np.asarray([f.label for f in files], dtype=np.int64)[ok]
        os.replace(tmp, target.with_suffix(".npy"))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    meta = {"root": str(root), "size": size, "labels": labels.tolist(), "skipped": skipped}
    meta_tmp = _temp_beside(target, ".json")
    Path(meta_tmp).write_text(json.dumps(meta), encoding="utf-8")
    os.replace(meta_tmp, target.with_suffix(".json"))
    return np.load(target.with_suffix(".npy"), mmap_mode="r", allow_pickle=False), labels, skipped


def _compact(out: np.memmap, ok: np.ndarray, target: Path, tmp: str) -> str:
    """A second memory-mapped file holding only the readable images (rare: corrupt files)."""
    kept = _temp_beside(target, ".npy")
    dense = np.lib.format.open_memmap(kept, mode="w+", dtype=np.uint8,
                                      shape=(int(ok.sum()), *out.shape[1:]))
    rows = np.flatnonzero(ok)
    for start in range(0, len(rows), 4096):
        dense[start:start + 4096] = out[rows[start:start + 4096]]
    dense.flush()
    del dense
    os.unlink(tmp)
    return kept


def _temp_beside(target: Path, suffix: str) -> str:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is as shareable as the folder
    return tmp
