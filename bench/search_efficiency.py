"""Search efficiency: the best reward after N trials, TPE against random sampling, median over seeds.

    .venv/bin/python bench/search_efficiency.py [--trials 12 48] [--seeds 5]
        [--evaluators zero_cost:params zero_cost:naswot]

Every run is a real ``nas search`` through ``nas.search.run_search``: space=mnas, target_flops=400M, the
default soft reward ACC * (FLOPs / 400M)^-0.7, ``trials=N``, ``sampler=tpe`` or ``random``, ``seed=s``
for s in 0 .. seeds-1; its run directory is bench/results/search_efficiency/<evaluator>-n<N>/<sampler>-seed<s>
(rewritten on every invocation). The table (printed, and written to bench/results/search_efficiency.md)
gives each sampler's median, min and max over the seeds of the run's best reward, the ratio of the medians,
and in how many seeds TPE's best beats random's with the same seed. With the same seed TPE's start-up
trials (4 of 12, 10 of 48: nas.search.optuna_backend) are exactly random's first trials, so the
comparison is paired.

The evaluator stands in for proxy training, which would take about 20 s per trial here (4 epochs of
digits on one shared core; 1 epoch leaves every candidate at chance accuracy, so it ranks nothing).
Each evaluator is built once, on the seed-0 digits split, and shared by all runs, so every run optimises
the same function of the architecture and only the sampler's seed varies:

- ``zero_cost:params``: ACC is the parameter count, the zero-cost paper's baseline (Abdelfattah et al. 2021,
  Spearman 0.73 with accuracy on NAS-Bench-201). Against the FLOPs term it rewards parameters placed where
  they cost few FLOPs (late, low-resolution stages): a real trade-off, no model built.
- ``zero_cost:naswot``: Mellor et al.'s score at initialisation on 64 training images. It varies little
  across this space (about 400 to 520), so the FLOPs term dominates and the reward favours small models.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

import torch

from nas.evaluate.data import load_dataset
from nas.evaluate.evaluators import make_evaluator
from nas.evaluate.train import TrainSettings
from nas.io import write_text
from nas.search import run_search

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLERS = ("tpe", "random")


def best_reward(evaluator_name: str, evaluator, trials: int, sampler: str, seed: int, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    pairs = ["space=mnas", "target_flops=400M", f"trials={trials}", f"sampler={sampler}", f"seed={seed}",
             f"evaluator={evaluator_name}", f"out={out}"]
    result = run_search(pairs, evaluator=evaluator, progress=False, say=lambda line: None)
    return result.best["reward"]


def table(rows: list[tuple[str, int, dict[str, list[float]]]], seeds: int) -> str:
    lines = [f"Best reward after N trials on the mnas space (target 400M FLOPs, soft reward w = -0.7), over {seeds} "
             "seeds: median [min, max].", "",
             "| evaluator | N | TPE | random | TPE / random (medians) | TPE better (same seed) |",
             "|---|---:|---|---|---:|---:|"]
    for evaluator, trials, best in rows:
        cells = []
        for sampler in SAMPLERS:
            values = best[sampler]
            cells.append(f"{statistics.median(values):.4g} [{min(values):.4g}, {max(values):.4g}]")
        ratio = statistics.median(best["tpe"]) / statistics.median(best["random"])
        wins = sum(t > r for t, r in zip(best["tpe"], best["random"]))
        lines.append(f"| {evaluator} | {trials} | {cells[0]} | {cells[1]} | {ratio:.3f} | {wins} of {len(best['tpe'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[12, 48], help="N: trials per run")
    parser.add_argument("--seeds", type=int, default=5, help="runs per sampler and N (seeds 0, 1, ...)")
    parser.add_argument("--evaluators", nargs="+", default=["zero_cost:params", "zero_cost:naswot"])
    args = parser.parse_args()
    torch.set_num_threads(1)  # one small model at a time: a second thread only adds per-op synchronisation
    data = load_dataset("digits", seed=0)
    rows = []
    for evaluator_name in args.evaluators:
        evaluator = make_evaluator(evaluator_name, data, TrainSettings(seed=0))
        for trials in args.trials:
            best: dict[str, list[float]] = {sampler: [] for sampler in SAMPLERS}
            for seed in range(args.seeds):
                for sampler in SAMPLERS:
                    out = RESULTS / "search_efficiency" / f"{evaluator_name.replace(':', '-')}-n{trials}" / f"{sampler}-seed{seed}"
                    best[sampler].append(best_reward(evaluator_name, evaluator, trials, sampler, seed, out))
            rows.append((evaluator_name, trials, best))
            print(f"{evaluator_name} N={trials}: " + "; ".join(
                f"{sampler} " + " ".join(f"{v:.4g}" for v in values) for sampler, values in best.items()), flush=True)
    text = table(rows, args.seeds)
    write_text(RESULTS / "search_efficiency.md", text + "\n")
    print()
    print(text)


if __name__ == "__main__":
    main()
