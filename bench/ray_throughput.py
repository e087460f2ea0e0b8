"""Trials per hour of ``nas search backend=ray`` with 1 and with 2 concurrent trials on this machine.

    .venv/bin/python bench/ray_throughput.py [--trials 8] [--epochs 2] [--concurrency 1 2] [--cpus-per-trial 1]

A fixed workload: the same ``--trials`` candidates (random sampler, one seed) from a small MBConv /
separable space, each proxy-trained for ``--epochs`` epochs on the built-in digits data on the CPU,
no pruning. One local Ray instance with every core serves both settings; each trial gets
``--cpus-per-trial`` CPUs (its torch threads; 0: cores / concurrency, the whole machine either way).
A run's time is the whole ``run_search`` call (Ray actors starting, each worker loading the data,
training, writing the outputs) and leaves out starting Ray itself, which happens once before both.
The last line is the ratio of the two rates. The load average is printed first: on a shared machine
other work skews the numbers, and torch's intra-op threads suffer most from it (they spin-wait for
cores that are busy elsewhere), so the default keeps one thread per trial.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SPACE = """
name: bench
description: A small space whose candidates train in about a second per epoch on digits.
proxy_training: {dataset: digits}  # nas's default is Fashion-MNIST at 28 px: the figures were measured on digits
spec:
  resolution: 32
  num_classes: 10
  stem: [{block: conv, out_channels: 16, kernel: 3, stride: 2, activation: swish}]
  head: {channels: 128, activation: swish}
per_stage:
  block: [mbconv, separable]
  kernel: [3, 5]
  expansion: [3, 6]
  channel_scale: [1.0, 1.5]
fixed_per_stage: {activation: swish}
skeleton:
  - {out_channels: 16, repeats: 1, stride: 1}
  - {out_channels: 24, repeats: 2, stride: 2}
  - {out_channels: 40, repeats: 2, stride: 2}
  - {out_channels: 64, repeats: 1, stride: 1}
"""


def trials_per_hour(folder: Path, space: Path, concurrent: int, cpus: int, trials: int, epochs: int) -> float:
    from nas.search import run_search

    start = time.perf_counter()
    # every trial trains (pruner=none, skip_hopeless=false): a skipped one would count as a finished trial
    result = run_search([f"space={space}", f"trials={trials}", f"epochs={epochs}", "sampler=random", "pruner=none",
                         "skip_hopeless=false", "target_flops=5M", "device=cpu", "backend=ray", f"concurrent={concurrent}",
                         f"cpus_per_trial={cpus}", f"out={folder / f'concurrent-{concurrent}'}"], progress=False)
    seconds = time.perf_counter() - start
    done = sum(r["state"] == "complete" for r in result.records)
    training = sum(r["seconds"] or 0 for r in result.records)
    rate = done / seconds * 3600
    print(f"concurrent={concurrent} cpus_per_trial={cpus}: {done} trials in {seconds:.1f} s "
          f"({training:.1f} s of it training, summed over trials) -> {rate:.0f} trials/hour", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus-per-trial", type=int, default=1)
    args = parser.parse_args()

    import ray

    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="error")
    print(f"{cores} CPU cores, load average {os.getloadavg()[0]:.1f}; {args.trials} trials of {args.epochs} epochs "
          "each on digits", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            space = Path(tmp) / "bench.yaml"
            space.write_text(SPACE)
            rates = [trials_per_hour(Path(tmp), space, c, args.cpus_per_trial or max(1, cores // c), args.trials,
                                     args.epochs) for c in args.concurrency]
    finally:
        ray.shutdown()
    if len(rates) == 2:
        print(f"ratio concurrent={args.concurrency[1]} / concurrent={args.concurrency[0]}: {rates[1] / rates[0]:.2f}x")


if __name__ == "__main__":
    main()
