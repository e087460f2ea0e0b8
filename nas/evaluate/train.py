"""The `train` evaluator: a short proxy training on a real data set, top-1 on a held-out split.

Fast on CPU by design: the whole data set is a preloaded tensor (no DataLoader, no per-sample Python),
channels_last memory format (oneDNN's fast path for depthwise and 1x1 convs), gradients set to None
instead of zeroed, a foreach optimizer step, and evaluation under inference_mode in large batches.
On a GPU (device=auto picks it) the data live on the device and the forward runs under bf16 autocast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..build import build_model
from ..settings import TrainSettings
from ..spec import Spec
from .data import Split
from .fast_convs import fast_convs


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from ..errors import UserError

        raise UserError("device: got 'cuda' but no CUDA device is available here; allowed: auto, cpu")
    return torch.device(name)


def lr_factor(step: int, total: int, steps_per_epoch: int, settings: TrainSettings) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``."""
    if settings.schedule == "cyclic":
        # ESPNetv2 (Mehta et al., 2019): the rate restarts at its maximum every cycle and decays linearly
        # towards lr_min within it, so several short cycles fit a short proxy run.
        cycle = max(1, int(round(settings.cycle_epochs * steps_per_epoch)))
        position = (step % cycle) / cycle
        return 1.0 - (1.0 - settings.lr_min_ratio) * position
    warmup = min(steps_per_epoch // 2, total // 10)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainResult:
    accuracy: float
    seconds: float
    epochs: int
    curve: list[float]          # held-out accuracy after each epoch
    images_per_second: float


def proxy_spec(spec: Spec, data: Split) -> Spec:
    """The spec as it is trained: the data set's classes and resolution; everything else unchanged."""
    return replace(spec, num_classes=data.num_classes, resolution=data.resolution, name=spec.name)


RECALIBRATION_IMAGES = 1024   # training images whose batch-norm statistics replace the running averages


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, x: torch.Tensor, batch: int = 256, autocast: bool = False) -> None:
    """Replace every batch norm's running mean and variance by their exact average over ``x``.

    After a few dozen steps the running averages (momentum 0.1) still remember the first, untrained
    weights, so evaluation mode scores every candidate near chance (measured: 0.100 at epochs=1). The
    statistics of the *final* weights on training images are what evaluation needs (as in
    once-for-all's BN recalibration).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None          # None: a cumulative average over every batch seen
    model.train()
    for i in range(0, len(x), batch):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            model(x[i:i + batch])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512, autocast: bool = False) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def train_and_evaluate(spec: Spec, data: Split, settings: TrainSettings,
                       report: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train ``spec`` (rebuilt for the data set) for ``settings.epochs`` and return its held-out accuracy.

    ``report(epoch, accuracy)`` is called after each epoch; it may raise to stop early (pruning).
    """
    device = pick_device(settings.device)
    if settings.threads and device.type == "cpu":
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    model = build_model(proxy_spec(spec, data)).to(device=device, memory_format=torch.channels_last)
    fmt = torch.channels_last
    train_x = data.train_x.to(device).contiguous(memory_format=fmt)
    if device.type == "cpu" and settings.rewrite_convs:
        fast_convs(model, train_x)  # exact rewrites of convs that small maps make wasteful (fast_convs.py)
    train_y = data.train_y.to(device)
    test_x = data.test_x.to(device).contiguous(memory_format=fmt)
    test_y = data.test_y.to(device)
    autocast = device.type == "cuda"

    decay, no_decay = [], []
    for p in model.parameters():  # no weight decay on biases, norms and PReLU slopes
        (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # AdamW by default: a few hundred steps from scratch are too few for SGD to rank candidates reliably.
    if settings.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum, nesterov=True, fused=True)
    else:  # fused: one kernel for the whole update instead of a few per parameter
        optimizer = torch.optim.AdamW(groups, lr=settings.lr, fused=True)
    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    n = len(train_x)
    steps_per_epoch = max(1, n // settings.batch_size)  # drop the last partial batch: BN needs > 1 sample
    total = steps_per_epoch * settings.epochs
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    curve: list[float] = []
    step = 0
    start = time.perf_counter()
    train_seconds = 0.0
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        epoch_start = time.perf_counter()
        for b in range(steps_per_epoch):
            idx = order[b * settings.batch_size:(b + 1) * settings.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * lr_factor(step, total, steps_per_epoch, settings)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = criterion(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - epoch_start
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {loss.item()})")
        recalibrate_batch_norm(model, train_x[order[:RECALIBRATION_IMAGES]], autocast=autocast)
        acc = accuracy(model, test_x, test_y, autocast=autocast)
        curve.append(acc)
        if report is not None:
            report(epoch, acc)
    images = steps_per_epoch * settings.batch_size * settings.epochs
    return TrainResult(curve[-1], time.perf_counter() - start, settings.epochs, curve,
                       images / train_seconds if train_seconds else float("nan"))
