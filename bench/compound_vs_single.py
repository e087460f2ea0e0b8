"""The EfficientNet paper's claim, measured: at equal FLOPs, is compound scaling better than scaling one dimension?

    .venv/bin/python bench/compound_vs_single.py [--dataset fashion-mnist] [--phis 1..3] [--seeds 3] [--epochs 5]
        [--threads 1] [--jobs 2]

Tan & Le (2019, figure 8) scale one base to higher FLOPs (multiply-adds) four ways and compare accuracy:
compound (depth alpha^phi, width beta^phi, resolution gamma^phi together) against width only, depth only
and resolution only. This benchmark does the same, small enough for a 2-core CPU:

- base: a reduced EfficientNet-B0 (four MBConv stages, SE, swish; 16, 24, 40, 64 channels) at 16 pixels;
- compound: the paper's alpha, beta, gamma = 1.2, 1.1, 1.15 (``--coefficients``), phi = 1, 2, 3,
  through ``nas.scale.scale_spec``;
- single dimension: for each phi, the width, depth or resolution multiplier whose model's FLOPs come closest
  to the compound model's, found by bisection on the analytic count (``nas.count_cost``). Rounding
  (channels to multiples of 8, repeats up, whole pixels) makes FLOPs a step function of the multiplier,
  so the match is close, not exact: the table shows each model's FLOPs against the compound one's;
- every model is proxy-trained the way the search trains (``nas.evaluate.train``, AdamW, cosine schedule,
  batch 32) on ``--dataset`` (default: the shipped Fashion-MNIST subset, 8,000 images to train, 2,000
  held out), and scored by top-1 on the held-out part, averaged over ``--seeds`` seeds (the seed sets the
  data split, the initialisation and the batch order).

Resolution: the proxy trains at the data set's resolution, so here each model gets the images resized
(bilinear) to its own resolution: 16 pixels for the base, 18, 21 and 24 for compound phi = 1, 2, 3,
up to 40-odd for resolution-only. Fashion-MNIST is 28 pixels, so up to 28 more resolution adds real
detail, as on ImageNet; beyond it a model sees upsampled pixels. (``--dataset digits``, this bench's
first setting, is 8x8: there every arm sees upsampled pixels and resolution adds no detail at all.)

Threads: each training runs in its own process on ``--threads`` torch threads (default 1), ``--jobs`` (default 2,
one per core here) at a time. At these sizes a second thread per training buys little, and on a shared
machine it makes every small op wait for a descheduled partner.

Writes bench/results/compound_vs_single.csv and .png and prints the table (markdown).
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import time
from pathlib import Path

import nas
from nas import scale
from nas.io import save_figure, write_text
from nas.scale.matched import matched_multiplier  # the one bisection (nas scale --compare single)
from nas.spec import from_dict, resolve
from nas.units import human

RESULTS = Path(__file__).resolve().parent / "results"

#: A reduced EfficientNet-B0 for small images (16 pixels): B0's MBConv recipe (expansion 4 here,
#: SE 0.25 of the input channels, swish), four stages instead of seven, channels a multiple of 8 so the
#: width multiplier rounds as EfficientNet's does.
BASE = {
    "name": "b0-small", "resolution": 16, "num_classes": 10,
    "notes": "A reduced EfficientNet-B0 for 16-pixel images (bench/compound_vs_single.py).",
    "stem": [{"block": "conv", "out_channels": 16, "kernel": 3, "stride": 1, "activation": "swish"}],
    "stages": [
        {"block": "mbconv", "repeats": r, "kernel": k, "stride": s, "expansion": e, "out_channels": c, "se_ratio": 0.25}
        for r, k, s, e, c in ((1, 3, 1, 1, 16), (2, 3, 2, 4, 24), (2, 5, 2, 4, 40), (2, 3, 2, 4, 64))
    ],
    "head": {"channels": 256, "activation": "swish", "dropout": 0.1},
}

SINGLE = {"width": scale.scale_width, "depth": scale.scale_depth, "resolution": scale.scale_resolution}
ARMS = ("compound", "width", "depth", "resolution")


def models(base: nas.Spec, coefficients, phis) -> list[dict]:
    """The base, then for each phi the compound model and the three single-dimension ones at its FLOPs."""
    rows = [{"arm": "base", "phi": 0, "multiplier": "", "spec": base}]
    for phi in phis:
        compound = scale.scale_spec(base, *coefficients, phi)
        rows.append({"arm": "compound", "phi": phi, "multiplier": "", "spec": compound})
        target = nas.count_cost(compound).flops
        for arm, scale_one in SINGLE.items():
            m = matched_multiplier(scale_one, base, target)
            rows.append({"arm": arm, "phi": phi, "multiplier": round(m, 4), "spec": scale_one(base, m)})
    return rows


_DATA: dict = {}  # (data set, resolution, seed) -> the split, per process


def train(spec: nas.Spec, dataset: str, seed: int, epochs: int, threads: int) -> float:
    """Held-out top-1 of ``spec`` proxy-trained on ``dataset`` at the spec's own resolution."""
    from nas.evaluate.data import load_dataset
    from nas.evaluate.train import TrainSettings, train_and_evaluate

    key = (dataset, spec.resolution, seed)
    if key not in _DATA:
        _DATA[key] = load_dataset(dataset, seed=seed, resolution=spec.resolution)
    settings = TrainSettings(epochs=epochs, seed=seed, threads=threads, device="cpu")
    return train_and_evaluate(spec, _DATA[key], settings).accuracy


def _train_task(task):
    index, spec, dataset, seed, epochs, threads = task
    start = time.perf_counter()
    return index, seed, train(spec, dataset, seed, epochs, threads), time.perf_counter() - start


def run(phis, seeds: int, epochs: int, threads: int, jobs: int, coefficients,
        dataset: str = "fashion-mnist") -> list[dict]:
    """Train every model for every seed, ``jobs`` trainings at a time (processes), and fill in the rows."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    base = from_dict(BASE)
    base_flops = nas.count_cost(base).flops
    rows = models(base, coefficients, phis)
    accuracies = {i: {} for i in range(len(rows))}
    seconds = {i: 0.0 for i in range(len(rows))}
    # the costliest first, so the last minutes are not one long training on one core
    tasks = sorted(((i, row["spec"], dataset, seed, epochs, threads) for i, row in enumerate(rows)
                    for seed in range(seeds)),
                   key=lambda t: -nas.count_cost(t[1]).flops * len(resolve(t[1]).blocks))
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for done in as_completed([pool.submit(_train_task, task) for task in tasks]):
            i, seed, accuracy, took = done.result()
            accuracies[i][seed], seconds[i] = accuracy, seconds[i] + took
            print(f"[{time.perf_counter() - start:5.0f} s] {rows[i]['arm']:>10} phi={rows[i]['phi']} seed {seed}: "
                  f"accuracy {accuracy:.4f} ({took:.0f} s)", flush=True)
    for i, row in enumerate(rows):
        cost = nas.count_cost(row["spec"])
        compound = next((r for r in rows if r["arm"] == "compound" and r["phi"] == row["phi"]), row)
        values = [accuracies[i][seed] for seed in range(seeds)]
        row.update(depth=row["spec"].depth_multiplier, width=row["spec"].width_multiplier,
                   resolution=row["spec"].resolution, params=cost.params, flops=cost.flops,
                   flops_vs_base=cost.flops / base_flops,
                   flops_vs_compound=cost.flops / nas.count_cost(compound["spec"]).flops,
                   accuracy=statistics.mean(values), accuracy_std=statistics.stdev(values) if seeds > 1 else 0.0,
                   accuracies=values, seconds=seconds[i])
    return rows


COLUMNS = ("arm", "phi", "multiplier", "depth", "width", "resolution", "params", "flops", "flops_vs_base",
           "flops_vs_compound", "accuracy", "accuracy_std", "accuracies", "seconds")


def write_csv(rows: list[dict], path: Path) -> None:
    with io.StringIO() as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "flops_vs_base": f"{row['flops_vs_base']:.3f}",
                             "flops_vs_compound": f"{row['flops_vs_compound']:.3f}",
                             "accuracy": f"{row['accuracy']:.4f}", "accuracy_std": f"{row['accuracy_std']:.4f}",
                             "accuracies": " ".join(f"{a:.4f}" for a in row["accuracies"]),
                             "seconds": f"{row['seconds']:.1f}"})
        write_text(path, fh.getvalue())


def markdown_table(rows: list[dict], seeds: int) -> str:
    lines = ["| phi | scaling | multiplier | depth | width | resolution | params | FLOPs (multiply-adds) | "
             f"FLOPs / compound | accuracy (mean of {seeds}) | std |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['phi']} | {r['arm']} | {r['multiplier']} | {r['depth']:.3g} | {r['width']:.3g} | "
                     f"{r['resolution']} | {r['params']:,} | {human(r['flops'])} | {r['flops_vs_compound']:.2f} | "
                     f"{r['accuracy']:.4f} | {r['accuracy_std']:.4f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, seeds: int, epochs: int, dataset: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    base = next(r for r in rows if r["arm"] == "base")
    markers = {"compound": "o-", "width": "s--", "depth": "^--", "resolution": "v--"}
    for arm in ARMS:
        points = [base] + [r for r in rows if r["arm"] == arm]
        ax.errorbar([r["flops"] for r in points], [r["accuracy"] for r in points],
                    yerr=[r["accuracy_std"] for r in points], fmt=markers[arm], capsize=3, label=arm,
                    linewidth=2.2 if arm == "compound" else 1.2)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs (multiply-adds)")
    ax.set_ylabel(f"held-out top-1 on {dataset} (mean of {seeds} seeds)")
    ax.set_title(f"Scaling {base['spec'].name} ({epochs} epochs): compound vs one dimension", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    figure.tight_layout()
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="a data set nas loads (fashion-mnist, digits, ...)")
    parser.add_argument("--phis", default="1..3", help="compound coefficients (1..3, 1,2 or 2)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per model (data split, init, batch order)")
    parser.add_argument("--epochs", type=int, default=5, help="proxy-training epochs per model")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per training (0: torch's default)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings run at once, one process each")
    parser.add_argument("--coefficients", default="1.2,1.1,1.15", help="alpha,beta,gamma (the paper's by default)")
    parser.add_argument("--out", default=str(RESULTS / "compound_vs_single"), help="path without extension")
    args = parser.parse_args()
    coefficients = scale.check_coefficients(*args.coefficients.split(","))
    phis = scale.parse_phi(args.phis)
    start = time.perf_counter()
    rows = run(phis, args.seeds, args.epochs, args.threads, args.jobs, coefficients, args.dataset)
    out = Path(args.out)
    write_csv(rows, out.with_suffix(".csv"))
    plot(rows, out.with_suffix(".png"), args.seeds, args.epochs, args.dataset)
    print()
    print(markdown_table(rows, args.seeds))
    print(f"\n{time.perf_counter() - start:.0f} s; wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
