"""Readers for the file formats the data sets come in, numpy only (and Pillow for image folders).

Every reader returns images as uint8 arrays shaped N x C x H x W and labels as int64, so the torch
side converts and normalises one way for every data set.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..memory import check_fits

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CIFAR_SIDE = 32
CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, un-gzipped when its name ends in .gz."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise UserError(f"{path}: unreadable ({exc})") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format; gzipped or not): magic 0 0 type ndim, ndim big-endian sizes, data."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise UserError(f"{path}: IDX header says {shape} of {dtype} but the file holds {len(body)} bytes")
    return np.frombuffer(body, dtype).reshape(shape)


def read_cifar_binary(path: Path, label_bytes: int = 1, label_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR binary-version batch: records of ``label_bytes`` label bytes then 3,072 pixel bytes (R, G, B planes).

    CIFAR-10 has one label byte; CIFAR-100 has two (coarse, fine), and ``label_index=1`` picks the fine one.
    """
    raw = np.frombuffer(_read_bytes(path), dtype=np.uint8)
    record = label_bytes + CIFAR_PIXELS
    if raw.size == 0 or raw.size % record:
        raise UserError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR records")
    rows = raw.reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
    return np.ascontiguousarray(images), rows[:, label_index].astype(np.int64)


def read_image_folder(root: Path, resolution: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """One sub-folder per class (sorted names are the labels), every image resized to ``resolution`` and made RGB."""
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise UserError(f"dataset: imagefolder:{root} is not a folder; allowed: imagefolder:PATH with one "
                        f"sub-folder per class")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    files = [(path, label) for label, name in enumerate(classes) for path in sorted((root / name).rglob("*"))
             if path.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"dataset: imagefolder:{root} holds no images in class sub-folders; allowed suffixes: "
                        + " ".join(IMAGE_SUFFIXES))
    check_fits(f"dataset imagefolder:{root} at resolution {resolution}", len(files) * 3 * resolution * resolution,
               "resolution")
    images = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB").resize((resolution, resolution), Image.Resampling.BILINEAR)
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(f"dataset: {path}: not a readable image ({type(exc).__name__})") from None
        images[i] = np.asarray(image).transpose(2, 0, 1)
    return images, np.array([label for _, label in files], dtype=np.int64), classes
