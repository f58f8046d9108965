"""Image folders: tiny folders of generated images (Pillow) in tmp_path, decoded once into a
memory-mapped cache keyed by the folder's contents, corrupt files skipped with one warning line,
bad folders refused with one line (exit 2 from the CLI), an optional validation folder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnas.cli import main
from mnas.config.loader import load_section
from mnas.config.schema import config_from_dict
from mnas.search.runner import check_inputs
from mnas.training import imagefolder
from mnas.training.data import DataConfig, load_dataset
from mnas.training.imagefolder import load_imagefolder
from mnas.training.trainer import TrainConfig, train_child
from search_spaces import decode_arch

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 30), "blue": (30, 40, 230)}
FORMATS = (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"))


def make_folder(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("red", "green"),
                seed: int = 0) -> Path:
    """Noisy images of one colour per class, in every format, size and colour mode."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = (24 + 4 * i, 16 + 2 * i) if i % 2 else (16, 20)
            noise = rng.integers(-20, 20, size=(h, w, 3))
            pixels = np.clip(np.array(COLOURS[name]) + noise, 0, 255).astype(np.uint8)
            img = Image.fromarray(pixels)
            if i == 3:
                img = img.convert("RGBA")
            suffix, fmt = FORMATS[i % 3]
            img.convert("RGB" if fmt == "JPEG" else img.mode).save(root / name / f"{i}.{suffix}",
                                                                   fmt)
    return root


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "train")


@pytest.fixture()
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = imagefolder.decode

    def counting(path: Path, size: int):
        calls.append(path.name)
        return real(path, size)

    monkeypatch.setattr(imagefolder, "decode", counting)
    return calls


def cfg(folder: Path, tmp_path: Path, **extra: object) -> DataConfig:
    return DataConfig(name="imagefolder", path=str(folder), input_size=8,
                      cache_dir=str(tmp_path / "cache"), **extra)


def test_folder_is_decoded_resized_and_labelled_by_subfolder(folder: Path, tmp_path: Path) -> None:
    data = load_imagefolder(str(folder), 8, str(tmp_path / "cache"), progress=False)
    assert data.classes == ("green", "red") and data.skipped == ()
    assert data.images.shape == (12, 8, 8, 3) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [0] * 6 + [1] * 6
    mean = data.images.reshape(12, -1, 3).mean(axis=1)
    assert (mean[:6, 1] > 150).all() and (mean[6:, 0] > 150).all()  # green, then red
    loaded = load_dataset(cfg(folder, tmp_path))
    assert loaded.in_channels == 3 and loaded.input_size == 8 and loaded.num_classes == 2
    assert len(loaded.train_y) + len(loaded.val_y) == 12 and loaded.flip


def test_later_runs_memory_map_the_cache(folder: Path, tmp_path: Path,
                                         count_decodes: list[str]) -> None:
    first = load_imagefolder(str(folder), 8, str(tmp_path / "cache"), progress=False)
    assert len(count_decodes) == 12
    again = load_imagefolder(str(folder), 8, str(tmp_path / "cache"), progress=False)
    assert len(count_decodes) == 12  # nothing decoded the second time
    assert isinstance(again.images, np.memmap) and np.array_equal(first.images, again.images)
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 2 and not any(n.startswith(".") for n in names)  # no temp files left
    other = load_imagefolder(str(folder), 12, str(tmp_path / "cache"), progress=False)
    assert other.images.shape[1:3] == (12, 12) and len(count_decodes) == 24  # size in the key


def test_a_changed_folder_is_read_again(folder: Path, tmp_path: Path,
                                        count_decodes: list[str]) -> None:
    load_imagefolder(str(folder), 8, str(tmp_path / "cache"), progress=False)
    make_folder(tmp_path / "extra", per_class=1, classes=("red",), seed=1)
    os.replace(tmp_path / "extra" / "red" / "0.jpg", folder / "red" / "new.jpg")
    grown = load_imagefolder(str(folder), 8, str(tmp_path / "cache"), progress=False)
    assert len(grown.labels) == 13 and len(count_decodes) == 25
    Image.new("RGB", (10, 10), (0, 0, 0)).save(folder / "red" / "new.jpg")  # same name, new bytes
    st = (folder / "red" / "new.jpg").stat()
    os.utime(folder / "red" / "new.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    changed = load_imagefolder(str(folder), 8, str(tmp_path / "cache"), progress=False)
    assert len(count_decodes) == 38 and changed.images[-1].max() < 10  # the new black image


def test_corrupt_images_are_skipped_with_one_warning_line(folder: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    (folder / "red" / "broken.jpg").write_bytes(b"not an image at all")
    png = (folder / "green" / "1.png").read_bytes()
    (folder / "green" / "truncated.png").write_bytes(png[: len(png) // 2])
    for _ in range(2):  # decoded, then from the cache: the same warning both times
        data = load_imagefolder(str(folder), 8, str(tmp_path / "cache"), progress=False)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "skipped 2 unreadable image(s)" in err[0]
        assert "red/broken.jpg" in err[0] and "green/truncated.png" in err[0]
        assert data.images.shape[0] == 12 and len(data.labels) == 12
        assert set(data.skipped) == {"red/broken.jpg", "green/truncated.png"}


def test_an_interrupted_decode_leaves_no_cache(folder: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(path: Path, size: int):
        raise KeyboardInterrupt

    monkeypatch.setattr(imagefolder, "decode", boom)
    with pytest.raises(KeyboardInterrupt):
        load_imagefolder(str(folder), 8, str(tmp_path / "cache"), progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("layout,message", [
    ({}, "no images"), ({"cat": 0, "dog": 0}, "no images"), ({"cat": 3}, "found 1 (cat)")])
def test_bad_folders_are_one_line_exit_2(tmp_path: Path, layout: dict, message: str,
                                         capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "README.txt").write_text("not an image")
    for name, n in layout.items():
        (root / name).mkdir()
        for i in range(n):
            Image.new("RGB", (8, 8)).save(root / name / f"{i}.png")
    config = tmp_path / "exp.yaml"
    config.write_text(f"child_training:\n  data: {{name: imagefolder, path: {root}, "
                      f"input_size: 8, cache_dir: {tmp_path / 'cache'}}}\n")
    assert main(["train", "mnasnet_a1", "--config", str(config), "--out",
                 str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "child_training.data.path" in err[0] and message in err[0]
    assert not (tmp_path / "run").exists()


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data.input_size: required for data set 'imagefolder'"):
        load_section(DataConfig, dict(name="imagefolder", path=str(tmp_path)), "data")
    with pytest.raises(ValueError, match=r"data.val_path: only for data set 'imagefolder'"):
        load_section(DataConfig, dict(name="digits", val_path=str(tmp_path)), "data")
    with pytest.raises(ValueError, match=r"data.path: required"):
        load_section(DataConfig, dict(name="imagefolder", input_size=8), "data")


def test_a_given_validation_folder(folder: Path, tmp_path: Path) -> None:
    val = make_folder(tmp_path / "val", per_class=2, classes=("red",), seed=3)
    make_folder(val, per_class=2, classes=("green",), seed=4)
    data = load_dataset(cfg(folder, tmp_path, val_path=str(val)))
    assert len(data.train_y) == 12 and data.val_y.tolist() == [0, 0, 1, 1]  # green=0, red=1
    make_folder(val, per_class=1, classes=("blue",), seed=5)
    with pytest.raises(ValueError, match=r"class subfolder 'blue' is not a class of the "
                                         r"training folder"):
        load_dataset(cfg(folder, tmp_path, val_path=str(val), max_val=3))


def test_search_and_train_use_it_alike(folder: Path, tmp_path: Path,
                                       count_decodes: list[str]) -> None:
    """The search decodes once in check_inputs (before any worker starts); children and
    `mnas train` then read the cache."""
    make_folder(folder, per_class=10, classes=("red", "green", "blue"), seed=7)
    data = {"name": "imagefolder", "path": str(folder), "input_size": 8,
            "cache_dir": str(tmp_path / "cache")}
    config = config_from_dict({"child_training": {"data": data}})
    check_inputs(config, progress=False)
    assert len(count_decodes) == 30
    arch = decode_arch(["r1_k3_s11_e1_i8_o8", "r1_k3_s22_e3_i8_o16"], stem_filters=8,
                       head_filters=32, stem_stride=1)
    result = train_child(arch, TrainConfig(data=DataConfig(**data), epochs=4, batch_size=8,
                                           lr=0.05, threads=1))
    assert result.status == "ok" and result.accuracy > 0.5  # colours: far above 1/3 chance
    yaml_path = tmp_path / "exp.yaml"
    yaml_path.write_text(f"search_space: {{stem_stride: 1}}\nchild_training:\n  data: {data}\n"
                         "  epochs: 1\n  batch_size: 8\n  threads: 1\n")
    assert main(["train", "r1_k3_s11_e1_i8_o8", "r1_k3_s22_e3_i8_o16", "--config",
                 str(yaml_path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert len(count_decodes) == 30  # nothing decoded again
