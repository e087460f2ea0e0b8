"""Proxy-training throughput: nas's training loop against a plain PyTorch loop, same models, same data.

    .venv/bin/python bench/train_throughput.py [--rounds 3] [--epochs 1] [--threads 1] [--resolution 14]

Both loops train the same architectures on the data the default search's proxy trains on (mnas's: the shipped
Fashion-MNIST subset, 4,000 training images at 14 px; ``--resolution`` another side), rebuilt for it by
``nas.evaluate.train.proxy_spec``: EfficientNet-B0, and one sampled MnasNet-space
candidate of about 400M FLOPs (multiply-adds) at 224. Each round builds a fresh model for each loop and
trains ``--epochs`` epochs at batch 32; images/s counts training steps only (no evaluation, no model
building), on the wall clock. Rounds alternate the loops, and the table shows each loop's median round, so
the load of other work on the machine falls on all loops alike.

- plain:    what typical PyTorch code does: a DataLoader over a TensorDataset (shuffle, batch 32), an NCHW
            model, AdamW with its defaults, zero_grad / backward / step and ``loss.item()`` every step.
- nas:      ``nas.evaluate.train.train_and_evaluate``, the loop the search runs (whole data set as one tensor,
            channels_last, foreach AdamW, no host sync per step); its own images/s figure.
- proposed: a copy of nas's loop (below) with the changes this benchmark suggests for nas/evaluate/train.py,
            each column adding one to the previous:
            +fused:  ``AdamW(..., fused=True)``, one kernel for the whole optimizer step instead of a dozen
                     foreach ops per parameter group;
            +crop:   kernels cropped to the taps that can reach the feature map (``CroppedConv``). At 8x8 input
                     EfficientNet-B0's last stages run on 1x1 maps, where a 5x5 depthwise conv only ever
                     multiplies its centre tap with data and the rest with zero padding. oneDNN's backward-
                     weights kernel for such depthwise convs pads every channel to a 16x16 block and takes
                     several ms per layer; cropped, the same layer is a per-channel multiply;
            +linear: 1x1 convs as F.linear on the channels_last view (``PointwiseLinear``): one BLAS call
                     instead of a oneDNN conv primitive, whose fixed cost per call dominates on small maps.
            The swaps change no result beyond float rounding: outputs and gradients are checked against the
            unswapped model below (the dropped taps' gradient is always zero).

Threads: every loop runs on ``--threads`` threads (default 1), so the ratio compares loops, not thread counts.
On a shared machine a second OpenMP thread makes each of these tiny ops wait for a descheduled partner;
``--threads 0`` keeps torch's default to see that.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import nas
from nas.evaluate.data import Split, load_dataset
from nas.evaluate.fast_convs import fast_convs
from nas.evaluate.train import TrainSettings, lr_factor, proxy_spec, train_and_evaluate
from nas.search.config import resolve_new_run
from nas.search.preflight import proxy_resolution
from nas.settings import SearchConfig
from nas.space import load_space, random_choices, sample

BATCH = 32


def mnas_candidate(target: float = 400e6) -> nas.Spec:
    """The first random MnasNet-space sample within 10 % of ``target`` FLOPs (deterministic)."""
    space = load_space("mnas")
    for seed in range(1000):
        spec = sample(space, random_choices(seed))
        if abs(nas.count_cost(spec).flops - target) < 0.1 * target:
            return nas.spec.replace(spec, name=f"mnas sample {seed}")
    raise RuntimeError("no MnasNet-space sample near the target")


# --------------------------------------------------------------------------------------------
# (a) plain PyTorch
# --------------------------------------------------------------------------------------------

def plain_loop(spec: nas.Spec, data: Split, epochs: int) -> float:
    torch.manual_seed(0)
    model = nas.build_model(spec)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.train_x, data.train_y),
                                         batch_size=BATCH, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.003)
    criterion = nn.CrossEntropyLoss()
    model.train()
    images, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            loss.item()
            images += len(x)
    return images / (time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# (b) nas's loop
# --------------------------------------------------------------------------------------------

def nas_loop(spec: nas.Spec, data: Split, epochs: int) -> float:
    return train_and_evaluate(spec, data, TrainSettings(epochs=epochs, device="cpu")).images_per_second


# --------------------------------------------------------------------------------------------
# (c) the proposed changes, on a copy of nas's inner loop
# --------------------------------------------------------------------------------------------

def proposed_loop(spec: nas.Spec, data: Split, epochs: int, fused: bool = True, crop: bool = True,
                  pointwise: bool = True) -> float:
    """nas.evaluate.train.train_and_evaluate's training part (CPU), with the proposed changes switchable."""
    settings = TrainSettings(epochs=epochs, device="cpu")
    torch.manual_seed(settings.seed)
    fmt = torch.channels_last
    model = nas.build_model(proxy_spec(spec, data)).to(memory_format=fmt)
    train_x, train_y = data.train_x.contiguous(memory_format=fmt), data.train_y
    if crop or pointwise:
        fast_convs(model, train_x, crop, pointwise)
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=settings.lr, **({"fused": True} if fused else {"foreach": True}))
    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    n = len(train_x)
    steps_per_epoch = max(1, n // settings.batch_size)
    total = steps_per_epoch * epochs
    generator = torch.Generator().manual_seed(settings.seed)
    step, start = 0, time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        for b in range(steps_per_epoch):
            idx = order[b * settings.batch_size:(b + 1) * settings.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * lr_factor(step, total, steps_per_epoch, settings)
            loss = criterion(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return steps_per_epoch * settings.batch_size * epochs / (time.perf_counter() - start)


def crop_is_exact(spec: nas.Spec, data: Split) -> tuple[int, float, float]:
    """Cropped convs, and the largest differences between a model and its cropped copy (same weights, same
    random masks): of the logits, and of every gradient (the input's, each parameter's or its live taps',
    the dropped taps' own, which must be zero) relative to the largest gradient."""
    fmt = torch.channels_last
    x = data.train_x[:BATCH].contiguous(memory_format=fmt)
    original = nas.build_model(proxy_spec(spec, data)).to(memory_format=fmt).train()
    cropped = nas.build_model(proxy_spec(spec, data)).to(memory_format=fmt).train()
    cropped.load_state_dict(original.state_dict())
    swapped = fast_convs(cropped, x)
    runs = []
    for model in (original, cropped):
        torch.manual_seed(1)  # the same dropout and drop-path masks
        image = x.clone().requires_grad_()
        logits = model(image)
        names, params = zip(*model.named_parameters())
        grads = torch.autograd.grad(F.cross_entropy(logits, data.train_y[:BATCH]), [image, *params])
        runs.append((logits.detach(), grads[0], dict(zip(names, grads[1:]))))
    (logits_a, image_a, grads_a), (logits_b, image_b, grads_b) = runs
    croppers = {f"{name}.weight": m for name, m in cropped.named_modules() if getattr(m, "window", None)}
    scale = max(g.abs().max().item() for g in [image_a, *grads_a.values()])
    worst = (image_a - image_b).abs().max().item()
    for name, grad in grads_a.items():
        if name in croppers:
            m = croppers[name]
            (top, bottom), (left, right) = m.window
            window = (slice(None), slice(None), slice(top, bottom + 1), slice(left, right + 1))
            dead = grad.clone()
            dead[window] = 0
            live = grads_b[name].view_as(grad[window])
            worst = max(worst, (grad[window] - live).abs().max().item(), dead.abs().max().item())
        else:
            worst = max(worst, (grad - grads_b[name]).abs().max().item())
    return swapped, (logits_a - logits_b).abs().max().item(), worst / scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each loop's median is shown")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per loop and round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every loop (0: torch's default)")
    searched = resolve_new_run([], load_space(SearchConfig().space))  # what `nas search` trains by default
    parser.add_argument("--resolution", type=int, default=proxy_resolution(searched),
                        help="image side (default: the side the default search's proxy trains at)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(searched.dataset, seed=0, resolution=args.resolution, max_train=searched.train_images)
    print(f"{searched.dataset}: {len(data.train_x)} training images {tuple(data.train_x.shape[1:])}, batch {BATCH}, "
          f"{args.epochs} epoch(s) per round, {args.rounds} rounds, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}")
    loops = {
        "plain": lambda spec: plain_loop(spec, data, args.epochs),
        "nas": lambda spec: nas_loop(spec, data, args.epochs),
        "+fused": lambda spec: proposed_loop(spec, data, args.epochs, crop=False, pointwise=False),
        "+crop": lambda spec: proposed_loop(spec, data, args.epochs, pointwise=False),
        "+linear": lambda spec: proposed_loop(spec, data, args.epochs),
    }
    specs = [nas.spec.replace(nas.load_spec("efficientnet-b0"), name="efficientnet-b0"), mnas_candidate()]
    print(f"{'images/s':<18} " + " ".join(f"{name:>8}" for name in loops)
          + f" {'nas/plain':>10} {'proposed/plain':>15}")
    for spec in specs:
        proxy = proxy_spec(spec, data)
        swapped, logit_diff, grad_diff = crop_is_exact(spec, data)
        rates: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, loop in loops.items():
                rates[name].append(loop(proxy))
        median = {name: statistics.median(values) for name, values in rates.items()}
        print(f"{spec.name:<18} " + " ".join(f"{median[name]:>8.0f}" for name in loops)
              + f" {median['nas'] / median['plain']:>9.2f}x {median['+linear'] / median['plain']:>14.2f}x")
        print(f"{'':<18} rounds: " + "; ".join(f"{name} " + "/".join(f"{v:.0f}" for v in values)
                                               for name, values in rates.items()))
        print(f"{'':<18} {swapped} convs swapped; max |logit diff| {logit_diff:.2g}, "
              f"max gradient diff {grad_diff:.2g} of the largest gradient")


if __name__ == "__main__":
    main()
