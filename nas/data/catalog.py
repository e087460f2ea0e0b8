"""Every data set by name, loaded as numpy arrays (no torch): images uint8 N x C x H x W, labels int64.

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), for smoke runs; float in [0, 1].
- ``fashion-mnist``: the stratified Fashion-MNIST subset shipped inside nas (see FASHION_MNIST_SUBSET.md),
  checked against its sha256; 28x28 grey, 10 classes, offline.
- ``fashion-mnist-full``: the official IDX files (gzipped or not) from data_dir, the cache or the system.
- ``cifar10`` / ``cifar100``: the official binary-version archives' files (CIFAR-100: the fine labels).
- ``imagefolder:PATH``: one sub-folder per class, decoded with Pillow, resized and made RGB.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError, did_you_mean
from .formats import read_cifar_binary, read_idx, read_image_folder
from .sources import SOURCES, locate

NAMES = ("digits", "fashion-mnist", "fashion-mnist-full", "cifar10", "cifar100", "imagefolder:PATH")
SUBSET_FILE = Path(__file__).with_name("fashion_mnist_subset.npz")
SUBSET_SHA256 = "2efc7d91aa0ee65e7ead4720048274f01a10f4723ba9c32645b3b4ac6ad447e8"
IMAGEFOLDER_RESOLUTION = 32  # the side images are decoded at when no resolution is asked for


@dataclass
class Images:
    name: str
    train_x: np.ndarray  # N x C x H x W: uint8 0..255 (digits: float32 in [0, 1])
    train_y: np.ndarray  # int64 class indices
    num_classes: int
    test_x: np.ndarray | None = None  # the official test split, where the data set has one
    test_y: np.ndarray | None = None


def check_name(name: str) -> None:
    """A UserError line unless ``name`` is one of NAMES (imagefolder: with a path)."""
    if name in NAMES[:-1] or (name.startswith("imagefolder:") and len(name) > len("imagefolder:")):
        return
    raise UserError(f"dataset: got {name!r}; allowed: {', '.join(NAMES)}{did_you_mean(name, NAMES[:-1])}")


def load_images(name: str, data_dir: str | os.PathLike | None = None, resolution: int | None = None) -> Images:
    """The data set ``name`` (see NAMES) at its native size.

    ``resolution`` only sets an image folder's decoding size."""
    check_name(name)
    if name == "digits":
        return _digits()
    if name == "fashion-mnist":
        return fashion_subset()
    if name == "fashion-mnist-full":
        return _fashion_full(data_dir)
    if name in ("cifar10", "cifar100"):
        return _cifar(name, data_dir)
    root = Path(name.split(":", 1)[1]).expanduser()
    x, y, classes = read_image_folder(root, resolution or IMAGEFOLDER_RESOLUTION)
    return Images(name, x, y, len(classes))


def _digits() -> Images:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return Images("digits", (digits.images / 16.0).astype(np.float32)[:, None], digits.target.astype(np.int64), 10)


def fashion_subset(path: Path = SUBSET_FILE, sha256: str = SUBSET_SHA256) -> Images:
    """The shipped subset, refused unless its bytes match the recorded sha256."""
    raw = path.read_bytes()
    got = hashlib.sha256(raw).hexdigest()
    if got != sha256:
        raise UserError(f"dataset: {path} has sha256 {got}, expected {sha256}: the file is damaged; reinstall nas")
    with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
        return Images("fashion-mnist", arrays["train_x"][:, None], arrays["train_y"].astype(np.int64), 10,
                      arrays["test_x"][:, None], arrays["test_y"].astype(np.int64))


def _fashion_full(data_dir) -> Images:
    files = locate(SOURCES["fashion-mnist"], data_dir)
    part = {name: read_idx(path) for name, path in files.items()}
    return Images("fashion-mnist-full", part["train-images-idx3-ubyte"][:, None],
                  part["train-labels-idx1-ubyte"].astype(np.int64), 10,
                  part["t10k-images-idx3-ubyte"][:, None], part["t10k-labels-idx1-ubyte"].astype(np.int64))


def _cifar(name: str, data_dir) -> Images:
    src = SOURCES[name]
    files = locate(src, data_dir)
    labels = (1, 0, 10) if name == "cifar10" else (2, 1, 100)  # label bytes per record, which one, classes
    parts = [read_cifar_binary(files[file], labels[0], labels[1]) for file in src.needed]
    train = parts[:-1]
    return Images(name, np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), labels[2],
                  *parts[-1])
