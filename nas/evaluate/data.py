"""Data sets for proxy training, loaded whole into memory as tensors.

- ``digits`` (default, offline): scikit-learn's bundled 8x8 handwritten digits, 1,797 images, 10 classes.
  Grey levels are replicated to 3 channels so the proxy model has the spec's own stem.
- ``cifar10`` / ``cifar100``: through torchvision (the ``vision`` extra), from ``data_dir``.
- ``imagefolder:PATH``: any folder of class sub-folders of images, through torchvision, resized to
  ``resolution`` (default 32).
A stratified held-out split (``holdout`` fraction, fixed by the seed) measures top-1 accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder:PATH")


@dataclass
class Split:
    name: str
    train_x: torch.Tensor  # float32, N x C x H x W, normalised per channel
    train_y: torch.Tensor  # int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    # Photographs and the like: a random crop and a left-right flip keep the class (nas train augments).
    # False for digits, where a flip turns one class into another.
    natural_images: bool = True

    @property
    def resolution(self) -> int:
        return int(self.train_x.shape[-1])


def _stratified_split(x: np.ndarray, y: np.ndarray, holdout: float, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=holdout, random_state=seed, stratify=y)


def _to_split(name, x: np.ndarray, y: np.ndarray, holdout: float, seed: int, max_train: int | None) -> Split:
    """x: N x C x H x W float in [0, 1]."""
    xtr, xte, ytr, yte = _stratified_split(x, y, holdout, seed)
    if max_train and len(xtr) > max_train:
        xtr, ytr = xtr[:max_train], ytr[:max_train]
    mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
    std = xtr.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    as_x = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32))  # noqa: E731
    as_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return Split(name, as_x(xtr), as_y(ytr), as_x(xte), as_y(yte), int(y.max()) + 1)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    return np.repeat(x, 3, axis=1), digits.target


def _torchvision():
    try:
        import torchvision  # noqa: F401
        from torchvision import datasets
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise UserError(f"dataset: this data set needs torchvision (pip install 'nas[vision]'); "
                        f"importing it failed: {type(exc).__name__}") from None
    return datasets


def _cifar(name: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    datasets = _torchvision()
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    parts = []
    for train in (True, False):
        try:
            ds = cls(str(data_dir), train=train, download=False)
        except RuntimeError:
            raise UserError(f"dataset: {name} not found under {data_dir}; download it there first "
                            f"(torchvision.datasets.{cls.__name__}(root, download=True)) or set data_dir=") from None
        parts.append((np.asarray(ds.data), np.asarray(ds.targets)))
    x = np.concatenate([p[0] for p in parts]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return x, np.concatenate([p[1] for p in parts])


def _imagefolder(path: Path, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    datasets = _torchvision()
    from torchvision import transforms

    if not path.is_dir():
        raise UserError(f"dataset: imagefolder:{path} is not a folder; allowed: imagefolder:PATH with one sub-folder per class")
    tf = transforms.Compose([transforms.Resize((resolution, resolution)), transforms.ToTensor()])
    try:
        ds = datasets.ImageFolder(str(path), transform=tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise UserError(f"dataset: imagefolder:{path}: {exc}".splitlines()[0]) from None
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    x = torch.stack(xs).numpy()
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return x[:, :3], np.asarray(ys)


def check_dataset_name(name: str) -> None:
    if name not in ("digits", "cifar10", "cifar100") and not (name.startswith("imagefolder:") and len(name) > 12):
        raise UserError(f"dataset: got {name!r}; allowed: " + ", ".join(DATASETS))


def load_dataset(name: str = "digits", seed: int = 0, holdout: float = 0.2, data_dir: str | None = None,
                 resolution: int | None = None, max_train: int | None = None) -> Split:
    """Load a data set by its name (see DATASETS) and split it; raise UserError for an unknown or missing one."""
    if name == "digits":
        x, y = _digits()
    elif name in ("cifar10", "cifar100"):
        x, y = _cifar(name, Path(data_dir or Path.home() / ".cache" / "nas" / "data"))
    elif name.startswith("imagefolder:"):
        x, y = _imagefolder(Path(name.split(":", 1)[1]).expanduser(), resolution or 32)
    else:
        check_dataset_name(name)
    if resolution and x.shape[-1] != resolution:
        x = torch.nn.functional.interpolate(torch.from_numpy(x), size=(resolution, resolution), mode="bilinear",
                                            align_corners=False).numpy()
    if len(np.unique(y)) < 2:
        raise UserError(f"dataset: {name} has fewer than 2 classes")
    split = _to_split(name, x, y, holdout, seed, max_train)
    split.natural_images = name != "digits"
    return split
