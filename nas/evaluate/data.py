"""Data sets for proxy training, loaded whole into memory as normalised tensors.

The files are read by ``nas.data`` (numpy only; see ``nas.data.catalog`` for the names). Here the
images become float tensors: resized to ``resolution`` when asked, grey replicated to 3 channels so
the proxy model keeps the spec's own stem, normalised per channel with the training part's statistics.

What accuracy is measured on (``measure_on``):
- ``holdout`` (default): a stratified part of the training images (``holdout`` fraction, fixed by the seed);
  the official test split, where there is one, stays untouched.
- ``test``: all training images train, the official test split measures (fashion-mnist, fashion-mnist-full,
  cifar10, cifar100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import Images, load_images
from ..errors import UserError
from .memory import FLOAT_BYTES, check_fits

# Data sets whose classes a flip or a shifted crop can change (a mirrored 2 is no 2): nas train does not augment them.
DIGIT_LIKE = ("digits",)
MEASURE_ON = ("holdout", "test")


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


def _stratified_split(y: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if not 0 < holdout < 1:
        raise UserError(f"holdout: got {holdout}; allowed: a fraction between 0 and 1")
    return train_test_split(np.arange(len(y)), test_size=holdout, random_state=seed, stratify=y)


def _as_float(x: np.ndarray, resolution: int | None) -> torch.Tensor:
    """uint8 (0..255) or float ([0, 1]) images -> float32 in [0, 1], resized to ``resolution``."""
    images = torch.from_numpy(np.array(x, dtype=np.float32))  # a copy: normalised in place below
    if x.dtype == np.uint8:
        images /= 255.0
    if resolution and images.shape[-1] != resolution:
        # Antialias when shrinking: every pixel counts (plain bilinear at 28 -> 12 px drops whole columns).
        images = torch.nn.functional.interpolate(images, size=(resolution, resolution), mode="bilinear",
                                                 align_corners=False, antialias=resolution < images.shape[-1])
    return images


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images[:, :3].contiguous()


def _parts(images: Images, measure_on: str, holdout: float, seed: int):
    if measure_on not in MEASURE_ON:
        raise UserError(f"measure_on: got {measure_on!r}; allowed: {', '.join(MEASURE_ON)}")
    if measure_on == "test":
        if images.test_x is None:
            raise UserError(f"measure_on: {images.name} has no official test split; allowed: holdout")
        return images.train_x, images.train_y, images.test_x, images.test_y
    train, held = _stratified_split(images.train_y, holdout, seed)
    return images.train_x[train], images.train_y[train], images.train_x[held], images.train_y[held]


def load_dataset(name: str, seed: int = 0, holdout: float = 0.2, data_dir: str | None = None,
                 resolution: int | None = None, max_train: int | None = None, measure_on: str = "holdout") -> Split:
    """Load a data set by its name (see nas.data.NAMES) and split it; raise UserError for an unknown or missing one."""
    if resolution is not None and resolution < 1:
        raise UserError(f"resolution: got {resolution}; allowed: a positive image side in pixels")
    images = load_images(name, data_dir, resolution)
    if len(np.unique(images.train_y)) < 2:
        raise UserError(f"dataset: {name} has fewer than 2 classes")
    xtr, ytr, xte, yte = _parts(images, measure_on, holdout, seed)
    if max_train and len(xtr) > max_train:
        xtr, ytr = xtr[:max_train], ytr[:max_train]
    if resolution:  # refused before the resized copies are allocated
        images_bytes = (len(xtr) + len(xte)) * 3 * resolution * resolution * FLOAT_BYTES
        check_fits(f"dataset {name} at resolution {resolution}", images_bytes, "cpu", "resolution")
    train_x, test_x = _as_float(xtr, resolution), _as_float(xte, resolution)
    # Statistics before grey is replicated: the same numbers, a third of the work.
    std, mean = torch.std_mean(train_x, dim=(0, 2, 3), keepdim=True, correction=0)
    std += 1e-6
    normalised = [_three_channels(x.sub_(mean).div_(std)) for x in (train_x, test_x)]
    as_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    return Split(name, normalised[0], as_y(ytr), normalised[1], as_y(yte), images.num_classes,
                 natural_images=name not in DIGIT_LIKE)
