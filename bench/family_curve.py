"""A family's accuracy against FLOPs, trained by `nas train`: compound scaling against each single dimension.

    .venv/bin/python bench/family_curve.py [--seeds 3] [--epochs 3] [--batch-size 64] [--width 0.25] [--jobs 2] [--quick]

Issue 11's bench (EfficientNet's Figures 1 and 8, small enough for a 2-core CPU):

- base: EfficientNet-B0's skeleton (the zoo's efficientnet-b0: seven MBConv stages, SE, swish) with width
  multiplier ``--width`` (0.25), a 16-pixel input and a stride-1 stem (as CIFAR ports of ImageNet networks
  do: with B0's stride-2 stem a 16-pixel image is 1x1 by the fourth stage; measured, 63 % against 74 %
  top-1 after 3 epochs), ten classes;
- compound: the paper's alpha, beta, gamma = 1.2, 1.1, 1.15, phi = 0..3 (``nas.scale.family``): 16, 18,
  21 and 24 pixels;
- single dimension: for phi = 1..3, width-only, depth-only and resolution-only members at the compound
  member's FLOPs (``nas.scale.matched``, as ``nas scale --compare single`` makes them);
- every member is trained by ``nas train`` (nas.train_run.run_train; AdamW, a short warm-up and cosine,
  label smoothing, EMA, crop-and-flip: a short schedule, ``--epochs``) on ``fashion-mnist`` (the shipped
  10,000-image subset: 8,000 to train, 2,000 held out) resized to the member's own resolution, for
  ``--seeds`` seeds (the seed sets the split, the initial weights and the data order).

Fashion-MNIST images are 28 pixels, so the base's 16 pixels leave detail for resolution scaling to add up
to 28 (phi = 3 compound is at 24); beyond 28 a resolution-only member only sees upsampled pixels.
FLOPs at these sizes are a step function of the side: a stride-2 layer gives ceil(side / 2), so 17
pixels cost about twice 16 (the last maps grow from 1x1 to 2x2). The compound members' FLOPs therefore
drift far from (alpha beta^2 gamma^2)^phi, and the single-dimension members match the compound member's
FLOPs, not that ideal; the table's "FLOPs / compound" column says how closely.

Threads: each training runs in its own process on one torch thread, ``--jobs`` (2, one per core) at a time.
Timing on a shared machine is noisy; the seconds column is what each training took here.
Runs resume: the trainings live in ``--work`` (one nas train folder each) and a finished one is not redone.

Writes bench/results/family_curve.csv, .md and .png (``--quick``: family_curve_quick.*).
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from nas import scale
from nas.cost import count_cost
from nas.io import save_figure, write_text
from nas.scale.matched import single_dimension_rows
from nas.spec import resolve, save
from nas.units import human
from nas.zoo import load_spec

RESULTS = Path(__file__).resolve().parent / "results"
COEFFICIENTS = (1.2, 1.1, 1.15)
SCALINGS = ("compound", "width", "depth", "resolution")
BASE_RESOLUTION = 16


def base_spec(width: float):
    b0 = load_spec("efficientnet-b0")
    return replace(b0, name=f"b0-w{width:g}-{BASE_RESOLUTION}px", width_multiplier=width, resolution=BASE_RESOLUTION,
                   num_classes=10, stem=(replace(b0.stem[0], stride=1), *b0.stem[1:]),
                   notes=f"EfficientNet-B0's skeleton at width x{width:g}, {BASE_RESOLUTION} pixels and a stride-1 "
                         "stem (bench/family_curve.py).")


def members(base, phis: list[int]) -> list[scale.FamilyRow]:
    compound = scale.family(base, *COEFFICIENTS, [0, *phis])
    return compound + single_dimension_rows(base, compound)


def recipe(epochs: int, batch_size: int, seed: int, resolution: int, out: Path) -> list[str]:
    """`nas train`'s keys for one member: a short schedule of the full recipe."""
    return [f"epochs={epochs}", f"batch_size={batch_size}", "optimizer=adamw", "lr=0.01", "warmup_epochs=0.3",
            "weight_decay=0.05", "ema_decay=0.99", f"seed={seed}", "dataset=fashion-mnist",
            f"resolution={resolution}", "device=cpu", "threads=1", f"out={out}"]


def _train(task) -> tuple[int, int, dict, float]:
    from nas.train_run import run_train

    index, spec_path, pairs, seed = task
    result = run_train(str(spec_path), pairs, progress=False, say=lambda _: None)
    # the epochs' own seconds, as checkpointed: a resumed or finished folder reports its first run's time
    return index, seed, result.history[-1], sum(row["seconds"] for row in result.history)


def run(rows: list[scale.FamilyRow], seeds: int, epochs: int, batch_size: int, jobs: int, work: Path) -> list[dict]:
    """Train every member for every seed, ``jobs`` at a time, the costliest first; one dict per member."""
    work.mkdir(parents=True, exist_ok=True)
    tasks = []
    for i, row in enumerate(rows):
        spec_path = work / f"{row.name}.yaml"
        save(row.spec, spec_path)
        for seed in range(seeds):
            keys = recipe(epochs, batch_size, seed, row.resolution, work / f"seed{seed}" / row.name)
            tasks.append((i, spec_path, keys, seed))
    # phi by phi (a run stopped early leaves whole phis done: rerun it with a smaller --phis), and within
    # a phi the costliest first; per-op dispatch dominates at these sizes, so blocks count as much as FLOPs
    tasks.sort(key=lambda t: (rows[t[0]].phi,
                              -count_cost(rows[t[0]].spec).flops * len(resolve(rows[t[0]].spec).blocks)))
    results: dict[int, dict] = {i: {"top1": {}, "ema_top1": {}, "seconds": 0.0} for i in range(len(rows))}
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for done in as_completed([pool.submit(_train, task) for task in tasks]):
            i, seed, last, took = done.result()
            results[i]["top1"][seed], results[i]["ema_top1"][seed] = last["top1"], last["ema_top1"]
            results[i]["seconds"] += took
            print(f"[{time.perf_counter() - start:5.0f} s] {rows[i].name:>26} seed {seed}: top-1 {last['top1']:.4f}, "
                  f"EMA {last['ema_top1']:.4f} ({took:.0f} s)", flush=True)
    compound_flops = {row.phi: row.flops for row in rows if row.scaling == "compound"}
    table = []
    for i, row in enumerate(rows):
        top1 = [results[i]["top1"][s] for s in range(seeds)]
        ema = [results[i]["ema_top1"][s] for s in range(seeds)]
        table.append({"scaling": row.scaling, "phi": row.phi, "name": row.name, "depth": row.depth_multiplier,
                      "width": row.width_multiplier, "resolution": row.resolution,
                      "blocks": len(resolve(row.spec).blocks), "params": row.params, "flops": row.flops,
                      "flops_vs_compound": row.flops / compound_flops[row.phi],
                      "top1": statistics.mean(top1), "top1_std": statistics.stdev(top1) if seeds > 1 else 0.0,
                      "ema_top1": statistics.mean(ema), "top1_seeds": top1, "seconds": results[i]["seconds"]})
    return table


COLUMNS = ("scaling", "phi", "name", "depth", "width", "resolution", "blocks", "params", "flops", "flops_vs_compound",
           "top1", "top1_std", "ema_top1", "top1_seeds", "seconds")


def write_csv(table: list[dict], path: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in table:
        writer.writerow({**r, "flops_vs_compound": f"{r['flops_vs_compound']:.3f}", "top1": f"{r['top1']:.4f}",
                         "top1_std": f"{r['top1_std']:.4f}", "ema_top1": f"{r['ema_top1']:.4f}",
                         "top1_seeds": " ".join(f"{a:.4f}" for a in r["top1_seeds"]),
                         "seconds": f"{r['seconds']:.1f}"})
    write_text(path, text.getvalue())


def markdown(table: list[dict], seeds: int, epochs: int, batch_size: int, base, seconds: float) -> str:
    lines = [f"# Family curve: {base.name} scaled four ways, trained by `nas train` on fashion-mnist", "",
             f"{epochs} epochs per member (AdamW, lr 0.01, weight decay 0.05, batch {batch_size}, warm-up 0.3 epochs then "
             "cosine, label smoothing 0.1, EMA 0.99, "
             f"crop and flip), mean of {seeds} seeds; 1 torch thread per training, 2 at a time on a shared 2-core "
             f"CPU (times are noisy). "
             f"{seconds:.0f} s of training epochs in all (the seconds column: per member, all seeds). "
             "Compound: alpha, beta, gamma = 1.2, 1.1, 1.15.", "",
             "| phi | scaling | depth | width | px | blocks | params | FLOPs | FLOPs / compound | "
             f"top-1 (mean of {seeds}) | std | EMA top-1 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['phi']} | {r['scaling']} | {r['depth']:.3g} | {r['width']:.3g} | {r['resolution']} | "
                     f"{r['blocks']} | {r['params']:,} | {human(r['flops'])} | {r['flops_vs_compound']:.2f} | "
                     f"{r['top1']:.4f} | {r['top1_std']:.4f} | {r['ema_top1']:.4f} |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: Path, seeds: int, epochs: int, base) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    phi0 = next(r for r in table if r["phi"] == 0)
    styles = {"compound": "o-", "width": "s--", "depth": "^--", "resolution": "v--"}
    for scaling in SCALINGS:
        points = [phi0] + [r for r in table if r["scaling"] == scaling and r["phi"] > 0]
        axes.errorbar([r["flops"] for r in points], [r["top1"] for r in points], yerr=[r["top1_std"] for r in points],
                      fmt=styles[scaling], capsize=3, label=scaling, linewidth=2.2 if scaling == "compound" else 1.2)
    axes.set(xscale="log", xlabel="FLOPs (multiply-adds)", ylabel=f"held-out top-1 (mean of {seeds} seeds)",
             title=f"{base.name} on fashion-mnist, {epochs} epochs: compound vs one dimension")
    axes.title.set_fontsize(10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="nas train epochs per member")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images per step (256 gave only 62 steps in 2 epochs: too few for the wide members)")
    parser.add_argument("--width", type=float, default=0.25, help="the base's width multiplier on B0")
    parser.add_argument("--phis", default="1..3", help="compound coefficients besides 0")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once, one process (one thread) each")
    parser.add_argument("--work", default="/tmp/nas-family-curve", help="the nas train folders (resumable)")
    parser.add_argument("--quick", action="store_true", help="phi 0..1, 2 seeds, 2 epochs: a smaller run")
    args = parser.parse_args()
    if args.quick:
        args.phis, args.seeds = "1", 2
    base = base_spec(args.width)
    rows = members(base, scale.parse_phi(args.phis))
    table = run(rows, args.seeds, args.epochs, args.batch_size, args.jobs,
                Path(args.work) / f"e{args.epochs}-b{args.batch_size}-w{args.width:g}")
    seconds = sum(row["seconds"] for row in table)
    out = RESULTS / ("family_curve_quick" if args.quick else "family_curve")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, out.with_suffix(".csv"))
    text = markdown(table, args.seeds, args.epochs, args.batch_size, base, seconds)
    write_text(out.with_suffix(".md"), text)
    plot(table, out.with_suffix(".png"), args.seeds, args.epochs, base)
    print("\n" + text + f"\nwrote {out}.csv, .md and .png")


if __name__ == "__main__":
    main()
