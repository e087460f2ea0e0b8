"""`nas train`'s keys, declared once like the search's (nas.settings): the full training recipe and where
its data and outputs are.

:class:`Recipe` is how one spec is trained (nas.evaluate.recipe runs it); :class:`TrainRunSettings` adds
the data set and the output folder around it. From these fields come the defaults, the validation of
each key=value, `nas train --help` and `nas scale --train`'s keys (:data:`TRAIN_RUN_KEYS`).
Torch-free, like the rest of nas.settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import DATASETS, DEFAULT_DATASET, DEVICES, OPTIMIZERS, keys_of, setting
from .values import Choice, Integer, Number, OrNone, Text


@dataclass(frozen=True)
class Recipe:
    """How one spec is trained. ``device`` and ``threads`` say where, not what: a run may resume elsewhere."""

    epochs: int = setting(30, Integer(1), "training epochs")
    batch_size: int = setting(128, Integer(2), "images per step (the last partial batch is dropped)")
    lr: float = setting(0.1, Number(0, 10), "peak learning rate, after the warm-up")
    optimizer: str = setting("sgd", Choice(OPTIMIZERS), "sgd (Nesterov momentum 0.9) or adamw")
    weight_decay: float = setting(4e-5, Number(0, 1), "on conv and linear weights only (MobileNetV2's; for "
                                                      "adamw try 0.05)")
    label_smoothing: float = setting(0.1, Number(0, 1, below_high=True), "label smoothing of the loss")
    warmup_epochs: float = setting(1.0, Number(0, 1000), "linear warm-up before the cosine decay")
    ema_decay: float = setting(0.999, Number(0, 1, below_high=True),
                               "exponential moving average of the weights (evaluated beside them)")
    seed: int = setting(0, Integer(0), "seed of the data split, the initial weights and the data order")
    device: str = setting("auto", Choice(DEVICES), "where training runs (auto: a GPU if there is one; data on "
                                                   "the device, channels_last, bf16 autocast)")
    # One thread: small-image training is bound by per-op overhead, and on a shared machine a second
    # thread mostly waits (see nas.settings.TrainSettings.threads).
    threads: int = setting(1, Integer(0), "torch CPU threads (0: torch's default)")

    def what(self) -> dict:
        """The settings that decide the result; a run resumes only under the same ones."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "threads")}


@dataclass(frozen=True)
class TrainRunSettings:
    """`nas train`'s settings: the recipe, the data it trains on and where the outputs go."""

    recipe: Recipe = field(default_factory=Recipe)
    dataset: str = setting(DEFAULT_DATASET, DATASETS, "the data set to train on (digits: 8x8, for smoke runs)")
    data_dir: str | None = setting(None, OrNone(Text("a folder")), "where downloaded data sets live")
    resolution: int | None = setting(None, OrNone(Integer(8)), "training side in pixels", shown="data set's")
    out: str | None = setting(None, OrNone(Text("a folder")), "output folder; an earlier one resumes",
                              shown="RUN_DIR/train or runs/<spec>-train-<time>")


#: Every key of `nas train` (and of `nas scale --train`), by the name a user types, in --help's order.
TRAIN_RUN_KEYS = keys_of(TrainRunSettings)
#: The keys that are the Recipe's; the others say where the data and the outputs are.
RECIPE_KEYS = tuple(name for name, key in TRAIN_RUN_KEYS.items() if key.section == "recipe")
