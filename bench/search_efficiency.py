"""Search efficiency: the best reward after N trials, TPE against random sampling, median over seeds.

    .venv/bin/python bench/search_efficiency.py [--trials 12 48] [--seeds 5]
        [--evaluators zero_cost:params zero_cost:naswot]
    .venv/bin/python bench/search_efficiency.py --trained [--seeds 3] [--trials 48] [--fresh]
    .venv/bin/python bench/search_efficiency.py --simulated [--seeds 200]

``--trained`` (issue 12's goal) runs the real objective: ``nas search space=mnas target_flops=400M`` with
every default (proxy training on the default data set, ``trials=48``, one worker), the search alone
(``final_top_k=0``: the final stage would add the same work to every method), as

- the default: TPE with ``pruner=keep75`` (the best 75 % go on at each epoch, on the reward) and
  ``skip_hopeless`` (a candidate whose reward could not beat the best so far even at accuracy 1 is not trained);
- the default before skip_hopeless (``skip_hopeless=false``);
- TPE without pruning (``pruner=none skip_hopeless=false``);
- random search without pruning (``sampler=random pruner=none skip_hopeless=false``);

for seeds 0 .. seeds-1, one run at a time (one training thread, the other core idle), and reads each run's
best reward against wall time from the trials' completion times in its journal. Per seed: the time the
default (and TPE without pruning) first reaches the best reward random search ends with, as a fraction
of random search's whole time; the goal is a median of at most 0.5. Writes search_efficiency_trained.md,
.json and .png (best reward against wall time) under bench/results/, the runs under --work.

Each run takes about 7 minutes, so the .json keeps every run's curve with the settings it ran under
(config.yaml, less ``out``): ``--seeds 5`` after ``--seeds 3`` runs seeds 3 and 4 only, and a run is
re-used only while nas would still resolve the same settings for it (a changed proxy re-runs everything).
``--fresh`` ignores what is kept.

``--simulated [--seeds 200]`` asks how far three seeds can be trusted. The trained runs show that at w = -0.7
this reward is almost all cost: a candidate's proxy accuracy barely depends on its FLOPs (their correlation
over every trained trial under --work is printed) and its training time barely either, so a search's progress
is a race to the cheap corner, decided by luck as much as by the sampler. The simulation replays that race
many times in seconds: nas's own samplers (nas.search.optuna_backend.make_sampler: TPE with and without the
skip, and random; pruning left out: in the trained runs it stopped no winner and saved 1-19 %) on the real mnas
space and its exact FLOPs, with each candidate's accuracy drawn from a normal
distribution with the trained trials' mean and spread (a fixed draw per architecture and seed) and its time
from their linear fit on FLOPs. It prints the default's median fraction of random's time, and how often a
median of three seeds would meet the goal. Writes search_efficiency_simulated.md.

The zero-cost mode below is the cheaper, older comparison of samplers alone.

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
import json
import re
import shutil
import statistics
import time
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


TRAINED_METHODS = {"default (TPE + keep75 + skip)": [], "TPE + keep75, no skip": ["skip_hopeless=false"],
                   "TPE, no pruning": ["pruner=none", "skip_hopeless=false"],
                   "random, no pruning": ["sampler=random", "pruner=none", "skip_hopeless=false"]}
BASELINE = "random, no pruning"
#: Keys nas added since a run was kept, with the value that run behaved as: a kept run lacking one matches it.
ADDED_KEYS = {"skip_hopeless": False}
#: Methods renamed since a run was kept (the default before skip_hopeless is "TPE + keep75, no skip").
RENAMED = {"default (TPE + keep75)": "TPE + keep75, no skip"}


def trained_pairs(extra: list[str], trials: int, seed: int, out: Path) -> list[str]:
    return ["space=mnas", "target_flops=400M", f"trials={trials}", f"seed={seed}", "final_top_k=0", f"out={out}", *extra]


def run_settings(pairs: list[str]) -> dict:
    """The settings nas resolves for a new run with these pairs, less the run folder: what a kept curve must match."""
    from nas.search.config import resolve_new_run
    from nas.space import load_space

    settings = resolve_new_run(pairs, load_space("mnas")).to_dict()
    settings.pop("out")
    return settings


def trained_curve(extra: list[str], trials: int, seed: int, out: Path) -> list[tuple[float, float]]:
    """One default search; its best reward so far at each completed trial, as (seconds since start, reward)."""
    import optuna

    from nas.search import optuna_backend

    shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    run_search(trained_pairs(extra, trials, seed, out), progress=False, say=lambda line: None)
    study = optuna.load_study(study_name=optuna_backend.STUDY_NAME, storage=optuna_backend._storage(out))
    done = sorted((t.datetime_complete.timestamp() - start, t.value) for t in study.get_trials(deepcopy=False)
                  if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None)
    curve, best = [], float("-inf")
    for seconds, reward in done:
        best = max(best, reward)
        curve.append((seconds, best))
    return curve


def time_to_reach(curve: list[tuple[float, float]], reward: float) -> float | None:
    return next((seconds for seconds, best in curve if best >= reward), None)


def trained_table(curves: dict[str, list[list[tuple[float, float]]]], trials: int) -> str:
    seeds = len(curves[BASELINE])
    lines = [f"Real objective: `nas search space=mnas target_flops=400M`, defaults (trials={trials}, one worker), "
             f"search stage only, {seeds} seeds, one run at a time on this 2-core machine.", "",
             "| method | best reward per seed | median | wall time per seed (s) | reaches random's best at "
             "(fraction of random's time) per seed | median fraction |",
             "|---|---|---:|---|---|---:|"]
    for method, runs in curves.items():
        finals = [curve[-1][1] for curve in runs]
        times = [curve[-1][0] for curve in runs]
        fractions = []
        for seed, curve in enumerate(runs):
            target_curve = curves[BASELINE][seed]
            reached = time_to_reach(curve, target_curve[-1][1])
            fractions.append(None if reached is None else reached / target_curve[-1][0])
        shown = ", ".join("never" if f is None else f"{f:.2f}" for f in fractions)
        known = sorted(float("inf") if f is None else f for f in fractions)
        median = statistics.median(known)
        lines.append(f"| {method} | {', '.join(f'{v:.4f}' for v in finals)} | {statistics.median(finals):.4f} | "
                     f"{', '.join(f'{t:.0f}' for t in times)} | {shown} | "
                     f"{'never' if median == float('inf') else f'{median:.2f}'} |")
    return "\n".join(lines)


def plot_trained(curves: dict[str, list[list[tuple[float, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.io import save_figure

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for (method, runs), colour in zip(curves.items(), ("tab:blue", "tab:green", "tab:orange", "tab:grey")):
        for seed, curve in enumerate(runs):
            xs, ys = zip(*curve)
            axes.step(xs, ys, where="post", color=colour, alpha=0.8, label=method if seed == 0 else None)
    axes.set_xlabel("wall time (s)")
    axes.set_ylabel("best reward so far")
    axes.set_title("mnas, target 400M FLOPs: best reward against wall time (one line per seed)")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def kept_runs(path: Path) -> list[dict]:
    """The runs the .json keeps: {method, seed, settings, curve} each, under today's method names and with the
    keys added since (ADDED_KEYS) filled in."""
    if not path.exists():
        return []
    return [{**run, "method": RENAMED.get(run["method"], run["method"]), "settings": {**ADDED_KEYS, **run["settings"]}}
            for run in json.loads(path.read_text()).get("runs", [])]


def main_trained(trials: int, seeds: int, work: Path, fresh: bool) -> None:
    torch.set_num_threads(1)
    path = RESULTS / "search_efficiency_trained.json"
    runs = [] if fresh else kept_runs(path)
    curves: dict[str, list] = {method: [] for method in TRAINED_METHODS}
    for seed in range(seeds):
        for method, extra in TRAINED_METHODS.items():
            out = work / f"{re.sub('[^a-z0-9]+', '-', method.lower()).strip('-')}-seed{seed}"
            settings = run_settings(trained_pairs(extra, trials, seed, out))
            kept = next((run for run in runs if run["method"] == method and run["seed"] == seed
                         and run["settings"] == settings), None)
            if kept is None:
                kept = {"method": method, "seed": seed, "settings": settings,
                        "curve": trained_curve(extra, trials, seed, out)}
                runs = [run for run in runs if not (run["method"] == method and run["seed"] == seed)] + [kept]
                write_text(path, json.dumps({"runs": runs}, indent=1) + "\n")  # a finished run is never lost
            curve = kept["curve"]
            curves[method].append(curve)
            print(f"seed {seed} {method}: best {curve[-1][1]:.4f} after {curve[-1][0]:.0f} s "
                  f"({len(curve)} complete trials)", flush=True)
    text = trained_table(curves, trials)
    write_text(RESULTS / "search_efficiency_trained.md", text + "\n")
    plot_trained(curves, RESULTS / "search_efficiency_trained.png")
    print()
    print(text)


def trained_trials(work: Path) -> tuple[list[float], list[float], list[float]]:
    """FLOPs, proxy accuracy and seconds of every complete search trial of the trained runs under ``work``."""
    import csv

    flops, accuracy, seconds = [], [], []
    for path in sorted(work.glob("*/trials.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["stage"] == "search" and row["state"] == "complete" and not row["cached"]:
                    flops.append(float(row["flops"]))
                    accuracy.append(float(row["accuracy"]))
                    seconds.append(float(row["seconds"]))
    return flops, accuracy, seconds


def simulated_curve(space, sampler: str, seed: int, trials: int, model: dict,
                    skip: bool = False) -> list[tuple[float, float]]:
    """One search with nas's sampler on ``space`` (mnas); accuracy and time drawn from ``model``. ``skip``: as
    skip_hopeless, a candidate whose reward at accuracy 1 is below the best so far is told pruned, untrained
    (a trial, as nas counts it, costing no time here)."""
    import hashlib
    from dataclasses import replace

    import numpy as np
    import optuna

    from nas import reward as reward_fns
    from nas.cost import count_cost
    from nas.search.config import SearchConfig
    from nas.search.optuna_backend import make_sampler
    from nas.space import sample
    from nas.spec import spec_hash

    config = replace(SearchConfig(), sampler=sampler, trials=trials, seed=seed)  # mnas's: target 400M, w -0.7
    study = optuna.create_study(direction="maximize", sampler=make_sampler(config, 0))
    curve, best, clock = [], float("-inf"), 0.0
    for _ in range(trials):
        trial = study.ask()
        spec = sample(space, trial.suggest_categorical)
        flops = float(count_cost(spec).flops)
        ceiling = reward_fns.reward(1.0, flops, config.cost_target(), config.reward, config.w)  # at accuracy 1
        if skip and ceiling < best:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        # the same architecture under the same seed draws the same accuracy, as a retrained one would be close
        draw = np.random.default_rng(int(hashlib.sha256(f"{spec_hash(spec)}-{seed}".encode()).hexdigest()[:12], 16))
        accuracy = float(np.clip(draw.normal(model["accuracy_mean"], model["accuracy_sd"]), 0.1, 1.0))
        reward = accuracy * ceiling
        study.tell(trial, reward)
        clock += model["seconds_base"] + model["seconds_per_mflop"] * flops / 1e6
        best = max(best, reward)
        curve.append((clock, best))
    return curve


def main_simulated(trials: int, seeds: int, work: Path) -> None:
    import numpy as np
    import optuna

    from nas.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    flops, accuracy, seconds = trained_trials(work)
    if len(flops) < 30:
        raise SystemExit(f"--simulated: {len(flops)} trained trials under {work}; run --trained first (or give --work)")
    slope, base = np.polyfit(np.array(flops) / 1e6, seconds, 1)
    model = {"accuracy_mean": float(np.mean(accuracy)), "accuracy_sd": float(np.std(accuracy)),
             "seconds_base": float(base), "seconds_per_mflop": float(slope)}
    correlation = float(np.corrcoef(np.log(flops), accuracy)[0, 1])
    space = load_space("mnas")  # once: every simulated search samples the same space
    fractions: dict[str, list[float]] = {"default (TPE + skip)": [], "TPE, no skip": []}
    for seed in range(seeds):
        random = simulated_curve(space, "random", seed, trials, model)
        for method, skip in (("default (TPE + skip)", True), ("TPE, no skip", False)):
            reached = time_to_reach(simulated_curve(space, "tpe", seed, trials, model, skip), random[-1][1])
            fractions[method].append(float("inf") if reached is None else reached / random[-1][0])

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(values) for values in fractions.values()) + " |"

    def met(values: list[float]) -> float:
        return sum(f <= 0.5 for f in values) / len(values)

    def three(values: list[float]) -> float:
        p = met(values)
        return 3 * p * p * (1 - p) + p ** 3  # at least two of three seeds at or below 0.5

    text = "\n".join([
        f"Simulated searches ({seeds} seeds, {trials} trials, mnas, target 400M FLOPs, w = -0.7), TPE against "
        f"random, nas's own samplers. Fitted on {len(flops)} trained trials under {work}: accuracy "
        f"{model['accuracy_mean']:.3f} +- {model['accuracy_sd']:.3f}, its correlation with log FLOPs "
        f"{correlation:.2f}; seconds per trial {base:.1f} + {slope * 1000:.2f} per GFLOP. Skip: a candidate whose "
        "reward at accuracy 1 is below the best so far is not trained (skip_hopeless, nas's default); it counts "
        "as a trial.", "",
        "| reaches random's final best at (fraction of random's time) | " + " | ".join(fractions) + " |",
        "|---|" + "---:|" * len(fractions),
        row(f"median over {seeds} seeds", lambda v: f"{statistics.median(v):.2f}"),
        row("quartiles", lambda v: f"{np.percentile(v, 25):.2f}, {np.percentile(v, 75):.2f}"),
        row("never", lambda v: f"{sum(f == float('inf') for f in v)} of {seeds}"),
        row("at or below 0.5 (one seed meets the goal)", lambda v: f"{met(v):.0%}"),
        row("a median of 3 seeds at or below 0.5 (the bench's goal met)", lambda v: f"{three(v):.0%}")])
    write_text(RESULTS / "search_efficiency_simulated.md", text + "\n")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=None, help="N: trials per run")
    parser.add_argument("--seeds", type=int, default=None, help="runs per sampler and N (seeds 0, 1, ...)")
    parser.add_argument("--evaluators", nargs="+", default=["zero_cost:params", "zero_cost:naswot"])
    parser.add_argument("--trained", action="store_true", help="the real objective: default, TPE, random (see above)")
    parser.add_argument("--work", default="/tmp/nas-search-efficiency", help="--trained: the run folders")
    parser.add_argument("--fresh", action="store_true", help="--trained: run every search, re-using none kept")
    parser.add_argument("--simulated", action="store_true", help="the trained race replayed on a fitted model")
    args = parser.parse_args()
    if args.simulated:
        main_simulated((args.trials or [48])[0], args.seeds or 200, Path(args.work))
        return
    if args.trained:
        main_trained((args.trials or [48])[0], args.seeds or 3, Path(args.work), args.fresh)
        return
    args.trials, args.seeds = args.trials or [12, 48], args.seeds or 5
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
