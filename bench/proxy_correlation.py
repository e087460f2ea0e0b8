"""Do zero-cost proxies rank mnas-space architectures the way proxy training does?

    .venv/bin/python bench/proxy_correlation.py [--specs 50] [--epochs 3] [--seed 0] [--jobs 2] [--from-csv PATH]

Samples ``--specs`` distinct architectures from search_spaces/mnas.yaml (seeded), trains each with the
``train`` evaluator on the embedded digits data set (nas.evaluate.train.TrainSettings defaults and one
seed, except 3 epochs instead of 4, which keeps 50 architectures near 11 minutes on 2 cores shared with
other work), and scores each at initialisation with every zero-cost proxy on one fixed batch (the
first 64 training images, exactly what ``evaluator=zero_cost:NAME`` uses in a search).
Prints each proxy's Spearman rho and Kendall tau against the trained held-out accuracy as a Markdown
table, the #params and #FLOPs baselines beside them, and writes

    bench/results/proxy_correlation.csv   one row per architecture: its costs, accuracy and scores
    bench/results/proxy_correlation.md    the table
    bench/results/proxy_correlation.png   accuracy against each proxy

The ground truth is the accuracy a search's default evaluator would see (a few epochs from scratch on
8x8 digits), not converged accuracy: a proxy that tracks it can stand in for the train evaluator.
Reference point: Abdelfattah et al. 2021 (Zero-Cost Proxies for Lightweight NAS) report synflow's
Spearman rho against final accuracy on NAS-Bench-201 CIFAR-10 as 0.74. ``--from-csv`` re-prints the
table and redraws the plot from a previous run's CSV without training again.

Each architecture runs in a worker process on one torch thread: these small models are dominated by
per-operator overhead, where two threads per model gain little, and on a shared CPU two threads wait on
each other at every operator. ``--jobs`` processes share the architectures.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from nas.settings import ZERO_COST_PROXIES
from nas.space import load_space, random_choices, sample
from nas.spec import Spec, spec_hash

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 64              # ZeroCostEvaluator's default batch
LOG_SCALE = {"synflow", "grad_norm", "params", "flops"}   # for the plot: these span orders of magnitude

_worker: dict = {}      # per worker process: the data set and the settings


def sample_specs(count: int, seed: int) -> list[Spec]:
    """``count`` distinct architectures from the mnas space, drawn by one seeded random stream."""
    space = load_space("mnas")
    choose = random_choices(seed)
    specs, seen = [], set()
    for _ in range(100 * count):
        spec = sample(space, choose)
        if spec_hash(spec) not in seen:
            seen.add(spec_hash(spec))
            specs.append(spec)
        if len(specs) == count:
            return specs
    raise SystemExit(f"the mnas space gave only {len(specs)} distinct architectures")


def _start_worker(seed: int, epochs: int) -> None:
    import torch

    from nas.evaluate.data import load_dataset
    from nas.evaluate.train import TrainSettings

    torch.set_num_threads(1)
    _worker["data"] = load_dataset("digits", seed=seed)
    _worker["settings"] = TrainSettings(epochs=epochs, seed=seed, device="cpu", threads=1)
    _worker["seed"] = seed


def measure(index: int, spec: Spec) -> dict:
    """Every proxy score (on the proxy-training spec: digits' 10 classes and 8x8 images), then training."""
    from nas.cost import count_cost
    from nas.evaluate.evaluators import TrainEvaluator, ZeroCostEvaluator
    from nas.evaluate.train import proxy_spec

    data, settings, seed = _worker["data"], _worker["settings"], _worker["seed"]
    trained_spec = proxy_spec(spec, data)
    cost = count_cost(trained_spec)
    row = {"index": index, "spec_hash": spec_hash(spec), "params": cost.params, "flops": cost.flops}
    start = time.perf_counter()
    for proxy in ZERO_COST_PROXIES:
        row[proxy] = ZeroCostEvaluator(proxy, data, seed, BATCH)(spec).score
    row["proxy_seconds"] = time.perf_counter() - start
    result = TrainEvaluator(data, settings)(spec)
    row["accuracy"], row["train_seconds"] = result.score, result.seconds
    return row


def correlations(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Per proxy: (Spearman rho, Kendall tau) of its score against trained accuracy."""
    from scipy.stats import kendalltau, spearmanr

    accuracy = [r["accuracy"] for r in rows]
    out = {}
    for proxy in ZERO_COST_PROXIES:
        scores = [r[proxy] for r in rows]
        rho = spearmanr(scores, accuracy, nan_policy="omit").statistic
        tau = kendalltau(scores, accuracy, nan_policy="omit").statistic
        out[proxy] = (float(rho), float(tau))
    return out


def markdown_table(stats: dict[str, tuple[float, float]], rows: list[dict], epochs: int) -> str:
    accuracy = [r["accuracy"] for r in rows]
    seconds = sum(r["proxy_seconds"] for r in rows) / len(rows)
    lines = [f"{len(rows)} architectures from the mnas space, trained {epochs} epochs on digits (8x8, "
             f"held-out top-1 {min(accuracy):.2f} to {max(accuracy):.2f}, median "
             f"{sorted(accuracy)[len(accuracy) // 2]:.2f}); all five scores take {seconds:.2f} s per architecture, "
             f"training {sum(r['train_seconds'] for r in rows) / len(rows):.1f} s.", "",
             "| score | Spearman rho | Kendall tau |", "|---|---:|---:|"]
    for proxy in ZERO_COST_PROXIES:
        rho, tau = stats[proxy]
        name = {"params": "#params (baseline)", "flops": "#FLOPs (baseline)"}.get(proxy, proxy)
        lines.append(f"| {name} | {rho:.2f} | {tau:.2f} |")
    lines += ["", "Anchor: synflow's Spearman rho against final accuracy on NAS-Bench-201 CIFAR-10 is 0.74 "
                  "(Abdelfattah et al. 2021)."]
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    columns = ["index", "spec_hash", "params", "flops", "accuracy", "train_seconds", "synflow", "naswot", "grad_norm",
               "proxy_seconds"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: (v if k == "spec_hash" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def plot(rows: list[dict], stats: dict[str, tuple[float, float]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(ZERO_COST_PROXIES), 3.2))
    FigureCanvasAgg(fig)
    accuracy = [r["accuracy"] for r in rows]
    for i, proxy in enumerate(ZERO_COST_PROXIES):
        ax = fig.add_subplot(1, len(ZERO_COST_PROXIES), i + 1)
        points = [(r[proxy], a) for r, a in zip(rows, accuracy) if math.isfinite(r[proxy])]
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=12, alpha=0.7)
        if proxy in LOG_SCALE and all(p[0] > 0 for p in points):
            ax.set_xscale("log")
            ax.tick_params(axis="x", which="minor", labelbottom=False)  # no overlapping 2x10^6-style labels
        ax.set_title(f"{proxy}: rho {stats[proxy][0]:.2f}, tau {stats[proxy][1]:.2f}", fontsize=9)
        ax.set_xlabel(f"{proxy} score at initialisation" if proxy not in ("params", "flops") else proxy, fontsize=8)
        if i == 0:
            ax.set_ylabel("held-out accuracy after training", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=50, help="architectures to sample and train")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per architecture")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling, the data split and training")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--from-csv", type=Path, help="re-print the table of a previous run's CSV (--epochs as it ran)")
    args = parser.parse_args()

    start = time.perf_counter()
    if args.from_csv:
        rows = read_csv(args.from_csv)
    else:
        from tqdm import tqdm

        specs = sample_specs(args.specs, args.seed)
        rows = []
        with ProcessPoolExecutor(args.jobs, initializer=_start_worker, initargs=(args.seed, args.epochs)) as pool:
            futures = [pool.submit(measure, i, spec) for i, spec in enumerate(specs)]
            for future in tqdm(as_completed(futures), total=len(futures), desc="architectures", file=sys.stderr):
                rows.append(future.result())
        rows.sort(key=lambda r: r["index"])
        RESULTS.mkdir(exist_ok=True)
        write_csv(rows, RESULTS / "proxy_correlation.csv")

    stats = correlations(rows)
    table = markdown_table(stats, rows, args.epochs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "proxy_correlation.md").write_text(table + "\n")
    plot(rows, stats, RESULTS / "proxy_correlation.png")
    print(table)
    where = RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS
    if args.from_csv:
        print(f"\nre-read {args.from_csv}; wrote {where}/proxy_correlation.{{md,png}}")
    else:
        print(f"\n{time.perf_counter() - start:.0f} s with {args.jobs} worker processes; "
              f"wrote {where}/proxy_correlation.{{csv,md,png}}")


if __name__ == "__main__":
    main()
