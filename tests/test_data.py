"""Data sets without torchvision: the shipped Fashion-MNIST subset, IDX and CIFAR binary files, image folders."""

import gzip
import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import SOURCES, fashion_subset, load_images
from nas.data.catalog import SUBSET_FILE, SUBSET_SHA256
from nas.data.formats import read_cifar_binary, read_idx
from nas.errors import UserError
from nas.evaluate.data import load_dataset

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: 0 0 0x08 ndim, big-endian sizes, uint8 data (gzipped when the name ends in .gz)."""
    raw = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def cifar_records(images: np.ndarray, labels: list[tuple[int, ...]]) -> bytes:
    """The binary version's records: label byte(s), then the R, G and B planes of a 32x32 image."""
    return b"".join(bytes(label) + image.tobytes() for image, label in zip(images, labels))


def test_shipped_subset_matches_its_checksum_and_loads_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "empty-cache"))  # nothing downloaded, nothing from the system
    assert hashlib.sha256(SUBSET_FILE.read_bytes()).hexdigest() == SUBSET_SHA256
    assert SUBSET_FILE.stat().st_size <= 5_000_000
    notice = SUBSET_FILE.with_name("FASHION_MNIST_SUBSET.md").read_text()
    assert SUBSET_SHA256 in notice and "MIT" in notice and "Zalando" in notice
    images = fashion_subset()
    assert images.train_x.dtype == np.uint8 and images.train_x.shape == (10_000, 1, 28, 28)
    assert np.bincount(images.train_y).tolist() == [1000] * 10
    assert np.bincount(images.test_y).tolist() == [100] * 10
    assert 60 < images.train_x.mean() < 90  # Fashion-MNIST's mean grey level is ~73, not a blank or noise file
    # Labels belong to their images: even the nearest class mean on raw pixels classifies the test slice well.
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32)  # noqa: E731
    means = np.stack([flat(images.train_x)[images.train_y == c].mean(axis=0) for c in range(10)])
    distances = ((flat(images.test_x)[:, None, :] - means[None]) ** 2).sum(axis=2)
    assert (distances.argmin(axis=1) == images.test_y).mean() > 0.6  # chance is 0.1
    assert not (tmp_path / "empty-cache").exists()


@pytest.mark.parametrize("resolution", [14, 28])
def test_fashion_mnist_at_14_and_28_px(resolution):
    data = load_dataset("fashion-mnist", seed=0, resolution=resolution)
    assert data.train_x.shape == (8000, 3, resolution, resolution) and data.num_classes == 10
    assert torch.bincount(data.test_y, minlength=10).tolist() == [200] * 10  # 20 % held out per class
    assert abs(float(data.train_x.mean())) < 0.01 and abs(float(data.train_x.std()) - 1) < 0.01
    assert torch.equal(data.train_x[:, 0], data.train_x[:, 2])  # grey replicated for a 3-channel stem
    other_seed = load_dataset("fashion-mnist", seed=1, resolution=resolution)
    assert not torch.equal(other_seed.test_y, data.test_y)


def test_shrinking_sees_every_pixel():
    """28 -> 12 px is antialiased: a one-pixel line anywhere survives (plain bilinear drops every third one)."""
    from nas.evaluate.data import _as_float

    lines = np.zeros((28, 1, 28, 28), np.uint8)
    for column in range(28):
        lines[column, 0, :, column] = 255
    ink = _as_float(lines, 12).mean(dim=(1, 2, 3)) * 28  # 1.0 = the line's ink fully kept
    assert ink.min() > 0.8 and ink.max() < 1.2
    data = load_dataset("fashion-mnist", measure_on="test", resolution=14)
    assert data.test_x.shape == (1000, 3, 14, 14) and len(data.train_x) == 10_000


def test_a_damaged_subset_is_refused(tmp_path):
    damaged = tmp_path / "subset.npz"
    raw = bytearray(SUBSET_FILE.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="sha256 .* expected " + SUBSET_SHA256):
        fashion_subset(damaged)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                    reason="needs Debian's dataset-fashion-mnist (only to make the subset)")
def test_the_script_reproduces_the_shipped_subset(tmp_path):
    out = tmp_path / "subset.npz"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_fashion_subset.py"), "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == SUBSET_FILE.read_bytes()
    notice = SUBSET_FILE.with_name("FASHION_MNIST_SUBSET.md")
    assert (tmp_path / "FASHION_MNIST_SUBSET.md").read_text() == notice.read_text()


def test_idx_files_gzipped_or_not(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(tmp_path / name, images)
        assert np.array_equal(read_idx(tmp_path / name), images)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\0" * 8)
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "a-idx3-ubyte").read_bytes()[:-1])
    with pytest.raises(UserError, match="IDX header says"):
        read_idx(tmp_path / "short")


def test_cifar_binary_records(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    (tmp_path / "ten.bin").write_bytes(cifar_records(images, [(7,), (0,), (9,)]))
    x, y = read_cifar_binary(tmp_path / "ten.bin")
    assert np.array_equal(x, images) and y.tolist() == [7, 0, 9]
    (tmp_path / "hundred.bin").write_bytes(cifar_records(images, [(1, 42), (19, 99), (0, 3)]))  # coarse, fine
    x, y = read_cifar_binary(tmp_path / "hundred.bin", label_bytes=2, label_index=1)
    assert np.array_equal(x, images) and y.tolist() == [42, 99, 3]
    (tmp_path / "torn.bin").write_bytes((tmp_path / "ten.bin").read_bytes()[:-5])
    with pytest.raises(UserError, match="not a whole number of 3073-byte CIFAR records"):
        read_cifar_binary(tmp_path / "torn.bin")


def test_cifar10_from_an_unpacked_binary_archive(tmp_path):
    """data_dir may be the folder holding cifar-10-batches-bin/, as the official archive unpacks."""
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = [(c,) for c in range(10)] * 2
        # Class c's red plane is bright, so the split and the channel order can be checked.
        images = rng.integers(0, 50, (20, 3, 32, 32), dtype=np.uint8)
        images[:, 0] += np.array([c * 20 for (c,) in labels], dtype=np.uint8)[:, None, None]
        (folder / name).write_bytes(cifar_records(images, labels))
    raw = load_images("cifar10", data_dir=tmp_path)
    assert raw.train_x.shape == (100, 3, 32, 32) and raw.test_x.shape == (20, 3, 32, 32) and raw.num_classes == 10
    assert all(raw.train_x[raw.train_y == c, 0].mean() > raw.train_x[raw.train_y == c, 1].mean() for c in range(1, 10))
    data = load_dataset("cifar10", data_dir=str(tmp_path), holdout=0.2, resolution=16)
    assert data.train_x.shape == (80, 3, 16, 16) and torch.bincount(data.test_y).tolist() == [2] * 10
    assert load_dataset("cifar10", data_dir=str(tmp_path), measure_on="test").test_x.shape == (20, 3, 32, 32)


def test_missing_sets_say_where_they_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "cache"))
    source = replace(SOURCES["fashion-mnist"], system_dirs=(str(tmp_path / "sys"),))
    monkeypatch.setitem(SOURCES, "fashion-mnist", source)
    with pytest.raises(UserError) as error:
        load_dataset("fashion-mnist-full", data_dir=str(tmp_path / "mine"))
    message = str(error.value)
    assert "\n" not in message and "nas data fetch fashion-mnist" in message
    for place in (tmp_path / "mine", tmp_path / "cache" / "data" / "fashion-mnist", tmp_path / "sys"):
        assert str(place) in message
    with pytest.raises(UserError, match="nas data fetch cifar100"):
        load_dataset("cifar100")


def test_image_folder_with_pillow(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, shade in (("cats", 40), ("dogs", 200)):
        (tmp_path / label).mkdir()
        for i in range(6):
            size = (20 + i, 24)  # mixed sizes are resized
            pixels = np.clip(rng.normal(shade, 10, size[::-1] + (3,)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    Image.fromarray(np.full((10, 10), 200, np.uint8), mode="L").save(tmp_path / "dogs" / "grey.png")  # made RGB
    Image.fromarray(np.full((10, 10, 4), 200, np.uint8), mode="RGBA").save(tmp_path / "dogs" / "alpha.png")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    raw = load_images(f"imagefolder:{tmp_path}", resolution=16)
    assert raw.train_x.shape == (14, 3, 16, 16) and raw.train_x.dtype == np.uint8 and raw.num_classes == 2
    assert raw.train_y.tolist() == [0] * 6 + [1] * 8  # sorted class folders are the labels
    assert raw.train_x[raw.train_y == 0].mean() < 60 and raw.train_x[raw.train_y == 1].mean() > 180
    data = load_dataset(f"imagefolder:{tmp_path}", resolution=16, holdout=0.3)
    assert data.num_classes == 2 and data.resolution == 16 and len(data.train_x) + len(data.test_x) == 14
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png: not a readable image"):
        load_images(f"imagefolder:{tmp_path}")
    with pytest.raises(UserError, match="is not a folder"):
        load_images(f"imagefolder:{tmp_path / 'nowhere'}")


def test_names_and_measure_on_are_checked():
    with pytest.raises(UserError, match="allowed: digits, fashion-mnist, .*did you mean 'fashion-mnist'"):
        load_dataset("fashion")
    with pytest.raises(UserError, match="digits has no official test split; allowed: holdout"):
        load_dataset("digits", measure_on="test")
    with pytest.raises(UserError, match="measure_on: got 'val'"):
        load_dataset("digits", measure_on="val")
