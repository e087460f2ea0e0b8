"""The full training recipe for one spec (what `nas train` runs), as opposed to the short proxy training.

SGD with Nesterov momentum or AdamW; a linear warm-up then a cosine decay, stepped per batch; label
smoothing; weight decay on conv and linear weights only (not batch norm, biases or PReLU slopes); an
exponential moving average of the weights, evaluated beside the raw weights; random crop and horizontal
flip for natural images (``Split.natural_images``; off for digits, where a flip changes the class).
On a GPU the data live on the device and the forward runs in channels_last under bf16 autocast.

After every epoch the whole state goes into a checkpoint (checkpoint.py), so a killed run resumes
from its last finished epoch; on CPU with the same seed and thread count it ends bit-for-bit where the
uninterrupted run ends.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..build import build_model
from ..errors import UserError
from ..settings.recipe import Recipe as Recipe  # declared with nas train's keys
from ..spec import Spec, dumps
from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .data import Split
from .train import accuracy, pick_device


@dataclass
class RecipeResult:
    model: nn.Module
    ema_model: nn.Module
    history: list[dict] = field(default_factory=list)  # one row per epoch (train_with_recipe lists its keys)
    resumed_from: int = 0                               # epochs already done when this call started

    @property
    def top1(self) -> float:
        return self.history[-1]["top1"]

    @property
    def ema_top1(self) -> float:
        return self.history[-1]["ema_top1"]


class WeightEMA:
    """An exponential moving average of a model's parameters and floating-point buffers (batch-norm
    statistics); integer buffers are copied. The decay warms up as TensorFlow's ExponentialMovingAverage
    with num_updates does, min(decay, (1 + n) / (10 + n)), so short runs are not stuck near the initial
    weights. (torch.optim.swa_utils.AveragedModel would lerp integer buffers and has no warm-up.)"""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0
        ours, theirs = self.model.state_dict(), model.state_dict()  # views of the live tensors
        self._floats = ([ours[k] for k in ours if ours[k].is_floating_point()],
                        [theirs[k] for k in ours if ours[k].is_floating_point()])
        self._others = [(ours[k], theirs[k]) for k in ours if not ours[k].is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._floats[0], self._floats[1], 1.0 - decay)  # one kernel for all tensors
        for ours, theirs in self._others:
            ours.copy_(theirs)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from 1 to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Each image shifted by up to ``padding`` pixels (zero-padded, i.e. the mean after normalisation)
    and flipped left-right with probability 1/2: the CIFAR / ImageNet-ResNet augmentation, on a batch."""
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    images = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(c, device=x.device)[None, :, None, None]
    cropped = padded[images, channels, rows, cols]
    return torch.where(flips[:, None, None, None], cropped.flip(3), cropped)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():  # weights of convs and linears decay; norms, biases and slopes do not
        (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True, fused=True)
    return torch.optim.AdamW(groups, lr=recipe.lr, fused=True)


def epoch_steps(data: Split, recipe: Recipe) -> int:
    steps = len(data.train_x) // recipe.batch_size  # drop the last partial batch: batch norm needs > 1 image
    if steps < 1:
        raise UserError(f"batch_size: got {recipe.batch_size}; allowed: at most the {len(data.train_x)} "
                        f"training images of {data.name}")
    return steps


class _Progress:
    """A tqdm bar per epoch on a terminal; one plain line per epoch otherwise (logs, pipes, CI)."""

    def __init__(self, enabled: bool, say: Callable[[str], None]):
        self.bar_wanted = enabled and sys.stdout.isatty()
        self.enabled, self.say, self.bar = enabled, say, None

    def start(self, epoch: int, epochs: int, steps: int) -> None:
        if self.bar_wanted:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", file=sys.stdout, leave=True)

    def step(self, loss: torch.Tensor, every: int = 10) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if self.bar.n % every == 0:  # .item() waits for the device; not every step
                self.bar.set_postfix(loss=f"{loss.item():.3f}")

    def end(self, row: dict, epochs: int) -> None:
        text = f"loss {row['train_loss']:.4f}, top-1 {row['top1']:.4f}, EMA {row['ema_top1']:.4f}"
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.close()
        elif self.enabled:
            self.say(f"epoch {row['epoch']}/{epochs}: {text} ({row['seconds']:.1f}s)")


def _identity(spec: Spec, data: Split, recipe: Recipe) -> dict:
    """What a checkpoint must have been trained on and with for this run to continue it."""
    return {"spec": dumps(spec), "recipe": recipe.what(), "data": [data.name, data.resolution, len(data.train_x)]}


def _check_resumable(stored: dict, expected: dict, path: Path) -> None:
    for part in ("spec", "data", "recipe"):
        if stored[part] != expected[part]:
            if part == "recipe":
                changed = [f"{k}={stored[part].get(k)!r} (now {v!r})" for k, v in expected[part].items()
                           if stored[part].get(k) != v]
                what = "settings " + ", ".join(changed)
            else:
                what = "a different " + part
            raise UserError(f"out: {path.parent} holds a run with {what}; allowed: the same settings to resume "
                            f"it, or another out= folder")


def train_with_recipe(spec: Spec, data: Split, recipe: Recipe, checkpoint_path: Path, progress: bool = True,
                      say: Callable[[str], None] = print,
                      on_epoch: Callable[[list[dict]], None] | None = None) -> RecipeResult:
    """Train ``spec`` (already at the data set's classes and resolution) on ``data``.

    Resumes from ``checkpoint_path`` when it holds an earlier run of the same spec, data and recipe;
    writes it after every epoch and then calls ``on_epoch(history)``. Rows of history: epoch, lr,
    train_loss, top1, ema_top1, seconds.
    """
    device = pick_device(recipe.device)
    if recipe.threads and device.type == "cpu":
        torch.set_num_threads(recipe.threads)
    steps = epoch_steps(data, recipe)
    total, warmup = steps * recipe.epochs, round(recipe.warmup_epochs * steps)

    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)  # data order and augmentation
    fmt = torch.channels_last
    model = build_model(spec).to(device=device, memory_format=fmt)
    ema = WeightEMA(model, recipe.ema_decay)
    optimizer = make_optimizer(model, recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    history: list[dict] = []
    identity = _identity(spec, data, recipe)
    state = load_checkpoint(checkpoint_path, say)
    if state is not None:
        _check_resumable(state["identity"], identity, checkpoint_path)
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        ema.updates = state["ema_updates"]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], generator)
        history = list(state["history"])
    resumed_from = len(history)

    train_x = data.train_x.to(device).contiguous(memory_format=fmt)
    train_y = data.train_y.to(device)
    test_x = data.test_x.to(device).contiguous(memory_format=fmt)
    test_y = data.test_y.to(device)
    autocast = device.type == "cuda"
    augment = data.natural_images
    padding = max(1, data.resolution // 8)  # 4 pixels at 32 x 32, as for CIFAR
    bar = _Progress(progress, say)

    for epoch in range(resumed_from, recipe.epochs):
        start = time.perf_counter()
        model.train()
        bar.start(epoch, recipe.epochs, steps)
        order = torch.randperm(len(train_x), generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        for b in range(steps):
            idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
            images = train_x[idx]
            if augment:
                images = random_crop_flip(images, generator, padding).contiguous(memory_format=fmt)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = criterion(model(images), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            ema.update()
            loss_sum += loss.detach()
            bar.step(loss)
        train_loss = loss_sum.item() / steps
        if not math.isfinite(train_loss):
            raise UserError(f"training diverged in epoch {epoch + 1} (loss {train_loss}); allowed: a lower lr= "
                            f"(got {recipe.lr})")
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
               "top1": accuracy(model, test_x, test_y, autocast=autocast),
               "ema_top1": accuracy(ema.model, test_x, test_y, autocast=autocast),
               "seconds": time.perf_counter() - start}
        history.append(row)
        save_checkpoint(checkpoint_path, {
            "identity": identity, "history": history, "model": model.state_dict(), "ema": ema.model.state_dict(),
            "ema_updates": ema.updates, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": capture_rng(generator)})
        bar.end(row, recipe.epochs)
        if on_epoch is not None:
            on_epoch(history)
    return RecipeResult(model, ema.model, history, resumed_from)
