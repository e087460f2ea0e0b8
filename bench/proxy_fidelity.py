"""Does the proxy rank architectures the way a longer training on the real task does?

    .venv/bin/python bench/proxy_fidelity.py [--space mnas] [--archs 24] [--skip-archs 0] [--jobs 2]
                                             [--ref-images 20000] [--ref-epochs 4] [--ref-seeds 4]
                                             [--proxy-seeds 2] [--settings NAME,NAME] [--name NAME]
                                             [--data-dir DIR] [--w -0.7]

Samples ``--archs`` distinct architectures from the ``--space`` space (seed 0; default mnas, the main job's).
The REFERENCE ranking is each architecture's reward from its held-out top-1 after a longer training on the full
Fashion-MNIST training set (``fashion-mnist-full``: ``--ref-images`` images at 28 px or the space's larger side,
``--ref-epochs`` epochs, the mean over ``--ref-seeds`` seeds), the task a Fashion-MNIST proxy stands for. The
reference's own seeds disagree too: the first row measures the reference against itself, the noise any proxy's
tau is measured through. Each candidate PROXY SETTING (a data set, a resolution, a number of epochs, a batch
size, a learning rate, a training-subset size) then trains every architecture under ``--proxy-seeds`` seeds (two
by default). Per setting it prints:

- seconds per candidate (one torch thread, ``--jobs`` worker processes, on whatever else the machine runs),
- Kendall tau of the proxy's ranking of rewards (from the mean of the two seeds' accuracies) against the
  reference's, beside the baseline a proxy must beat: the cost factor alone (FLOPs alone),
- Kendall tau between the two seeds' rankings (how much of the ranking is noise),
- with ``--proxy-seeds 4``, Kendall tau between the mean of seeds 0-1 and the mean of seeds 2-3: how far a
  two-seed mean, what the final selection ranks its candidates by, repeats itself,
- how many of the reference's best three are in the proxy's top five,
- with 24 architectures tau is uncertain by about +-0.15: a bootstrap interval, and the share of paired
  resamples in which a setting ranks closer to the reference than the setting nas uses by default,
- Spearman's rho corrected for both sides' seed noise: settings alike in it differ in their noise only.

Choosing the best of many settings on one set of architectures flatters it: ``--skip-archs 24`` measures the
next 24 (a fresh set; tables named proxy_fidelity_archs25-48.*), ``--archs 48`` all of them. Another space's
tables carry its name and range (proxy_fidelity_lcnet_archs1-24.*); ``--name`` names them otherwise, so
that a run measuring something else on the same architectures does not replace an earlier run's tables. A
setting without a resolution trains at the side nas would give that space (the data set's own, or the
space's proxy_resolution where larger).

Every training is cached, the reference's in bench/results/proxy_fidelity_reference.json and the proxies' in
bench/results/proxy_fidelity_proxies.json (keyed by the settings, the seed and the spec hash), so a re-run trains
only what is new. The table goes to bench/results/proxy_fidelity.md, every accuracy to
bench/results/proxy_fidelity.csv.

What is ranked is the reward a search maximises, ACC x (FLOPs / T)^w at ``--w`` (-0.7, nas's default and the
main job's; T does not change the order), with each architecture's FLOPs counted at its own resolution as a
search counts them; ``--w 0`` ranks accuracy alone (tables named ..._accuracy). The cost factor is exact and the
same on both sides, but it does not make the reward's ranking the accuracy's: the reward weighs accuracy ratios
against cost ratios, so a proxy whose accuracies spread wider than the reference's (a short training leaves the
small networks far behind) ranks the rewards differently even where it ranks accuracy alike. Accuracy range
and seed sd stay in accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nas.cost import count_cost
from nas.space import load_space, random_choices, sample, space_names
from nas.spec import Spec, dumps, loads, spec_hash

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_CACHE = RESULTS / "proxy_fidelity_reference.json"
PROXY_CACHE = RESULTS / "proxy_fidelity_proxies.json"
SEEDS = (0, 1)  # the seeds of every column but the split half's (seeds 2-3 come with --proxy-seeds 4)


@dataclass(frozen=True)
class Setting:
    name: str
    dataset: str
    resolution: int | None
    epochs: int
    max_train: int | None = None
    batch_size: int = 32
    lr: float = 0.003
    score_epochs: int = 1  # the score: the mean held-out accuracy of the last this many epochs (1: the last's)
    # The seed that draws the held-out split. None: the training seed, as a search under another seed splits
    # the data anew; a number: one split for every training seed, as the final selection's seeds share theirs.
    split_seed: int | None = None

    def tag(self, seed: int) -> str:
        """The cache key: every field that changes a result (the name is only a label). Fields added later
        appear only when they differ from their default, so earlier cached trainings keep their keys."""
        added = ((f"-lr{self.lr:g}" if self.lr != 0.003 else "")
                 + (f"-score{self.score_epochs}" if self.score_epochs != 1 else "")
                 + (f"-split{self.split_seed}" if self.split_seed is not None else ""))
        return (f"{self.dataset}-{self.resolution}px-{self.epochs}ep-{self.max_train}-b{self.batch_size}{added}"
                f"-seed{seed}")


# The candidates: digits at its own 8 px (nas's default until the mnas space declared 16 px) and upsampled to
# 16 px, with more epochs, smaller batches or other learning rates; Fashion-MNIST subsets at 14 and 28 px.
# (A lower learning rate ranks mnas closer but starves other spaces: lcnet at lr 0.0005 reached 0.24-0.59 where
# lr 0.003 reaches 0.67-0.90. So 16 px and lr 0.0005 are the mnas space's own proxy settings, not nas's.)
SETTINGS = {s.name: s for s in (
    Setting("digits-8px-4ep", "digits", None, 4),
    Setting("digits-8px-8ep", "digits", None, 8),
    Setting("digits-8px-12ep", "digits", None, 12),   # the final selection's schedule (3x the default epochs)
    Setting("digits-8px-4ep-b16", "digits", None, 4, batch_size=16),
    Setting("digits-8px-4ep-lr0.0005", "digits", None, 4, lr=0.0005),
    Setting("digits-8px-4ep-lr0.001", "digits", None, 4, lr=0.001),
    Setting("digits-8px-4ep-lr0.002", "digits", None, 4, lr=0.002),
    Setting("digits-8px-4ep-lr0.006", "digits", None, 4, lr=0.006),
    Setting("digits-16px-4ep", "digits", 16, 4),
    Setting("digits-16px-4ep-lr0.00025", "digits", 16, 4, lr=0.00025),
    Setting("digits-16px-4ep-lr0.0005", "digits", 16, 4, lr=0.0005),
    Setting("digits-16px-4ep-lr0.001", "digits", 16, 4, lr=0.001),
    Setting("digits-16px-4ep-lr0.002", "digits", 16, 4, lr=0.002),
    Setting("digits-16px-6ep-lr0.0005", "digits", 16, 6, lr=0.0005),
    Setting("digits-16px-8ep-lr0.0005", "digits", 16, 8, lr=0.0005),
    Setting("digits-16px-12ep-lr0.0005", "digits", 16, 12, lr=0.0005),  # lr 0.0005's final selection (3x)
    Setting("digits-16px-12ep", "digits", 16, 12),  # mnas's final selection (3x the epochs)
    Setting("digits-16px-4ep-b16-lr0.001", "digits", 16, 4, batch_size=16, lr=0.001),
    # the same training, scored by the mean of its last epochs' held-out accuracy (less of one snapshot's noise)
    Setting("digits-16px-4ep-lr0.0005-last2", "digits", 16, 4, lr=0.0005, score_epochs=2),
    Setting("digits-16px-4ep-lr0.0005-all4", "digits", 16, 4, lr=0.0005, score_epochs=4),
    # the same trainings on one held-out split (seed 0's) for every seed: how much of the seeds' disagreement is
    # which digits are held out, and what the final selection's seeds, which share their split, see
    Setting("digits-16px-4ep-lr0.0005-split0", "digits", 16, 4, lr=0.0005, split_seed=0),
    Setting("digits-16px-12ep-lr0.0005-split0", "digits", 16, 12, lr=0.0005, split_seed=0),
    Setting("fmnist-14px-2ep", "fashion-mnist", 14, 2),
    Setting("fmnist-14px-3ep", "fashion-mnist", 14, 3),
    Setting("fmnist-14px-4ep", "fashion-mnist", 14, 4),
    Setting("fmnist-14px-2ep-4k", "fashion-mnist", 14, 2, max_train=4000),
    Setting("fmnist-14px-3ep-4k", "fashion-mnist", 14, 3, max_train=4000),
    Setting("fmnist-14px-4ep-4k", "fashion-mnist", 14, 4, max_train=4000),
    Setting("fmnist-14px-9ep-4k", "fashion-mnist", 14, 9, max_train=4000),  # mnas's final selection (3x epochs)
    Setting("fmnist-28px-2ep", "fashion-mnist", 28, 2),
    Setting("fmnist-28px-4ep", "fashion-mnist", 28, 4),
    Setting("fmnist-28px-2ep-4k", "fashion-mnist", 28, 2, max_train=4000),
    Setting("fmnist-28px-3ep-4k", "fashion-mnist", 28, 3, max_train=4000),
    # at the data set's side, or the space's where larger: for osa, which needs 29 px, real Fashion-MNIST detail
    # at about the cost of digits blown up from 8 px (2,000 images against digits' 1,437)
    Setting("fmnist-28px-4ep-2k", "fashion-mnist", None, 4, max_train=2000),
)}

#: What the README's table shows: every setting measured so far (the others in SETTINGS are there to try).
MEASURED = ("digits-8px-4ep,digits-8px-8ep,digits-8px-12ep,digits-8px-4ep-b16,digits-8px-4ep-lr0.0005,"
            "digits-8px-4ep-lr0.001,digits-8px-4ep-lr0.002,digits-8px-4ep-lr0.006,digits-16px-4ep,"
            "digits-16px-4ep-lr0.00025,digits-16px-4ep-lr0.0005,digits-16px-4ep-lr0.001,digits-16px-4ep-lr0.002,"
            "digits-16px-4ep-b16-lr0.001,digits-16px-6ep-lr0.0005,digits-16px-8ep-lr0.0005,fmnist-14px-2ep,"
            "fmnist-14px-3ep,fmnist-28px-2ep-4k")

_data_cache: dict = {}


def default_setting(space: str) -> Setting | None:
    """The setting that is what `nas search space=SPACE` does with its defaults (so the table marks it), if listed,
    at the space's side (at_space_side)."""
    from nas.search.config import space_defaults
    from nas.search.preflight import NATIVE_RESOLUTION, proxy_resolution

    config = replace(space_defaults(load_space(space)), space=space)  # as nas search resolves it
    train = config.train
    for s in (at_space_side(s, space) for s in SETTINGS.values()):
        side = s.resolution or NATIVE_RESOLUTION[s.dataset]
        if ((s.dataset, side, s.epochs, s.max_train, s.batch_size, s.lr)
                == (config.dataset, proxy_resolution(config), train.epochs, config.train_images, train.batch_size,
                    train.lr)):
            return s
    return None


def at_space_side(setting: Setting, space: str) -> Setting:
    """``setting`` without a resolution of its own trains at its data set's side; where ``space`` cannot work at
    that side (osa's stride-4 stem and pools: 29 px at least), at the side the space declares, as nas search
    would train it. That side then enters the cache key."""
    from nas.search.preflight import NATIVE_RESOLUTION
    from nas.space import needed_resolution, smallest_resolution

    loaded = load_space(space)
    if setting.resolution is None and smallest_resolution(loaded) > NATIVE_RESOLUTION[setting.dataset]:
        native, needed = NATIVE_RESOLUTION[setting.dataset], needed_resolution(loaded)
        return replace(setting, resolution=needed, name=setting.name.replace(f"-{native}px", f"-{needed}px"))
    return setting


def sample_specs(count: int, seed: int = 0, space_name: str = "mnas") -> list[Spec]:
    space = load_space(space_name)
    choose = random_choices(seed)
    specs: list[Spec] = []
    seen: set[str] = set()
    while len(specs) < count:
        spec = sample(space, choose)
        if spec_hash(spec) not in seen:
            seen.add(spec_hash(spec))
            specs.append(spec)
    return specs


def train_one(spec_yaml: str, setting: dict, seed: int, data_dir: str | None) -> dict:
    """One architecture under one setting and seed, in a worker process on one torch thread."""
    import torch

    from nas.evaluate.data import load_dataset
    from nas.evaluate.train import TrainSettings, train_and_evaluate

    torch.set_num_threads(1)
    s = Setting(**setting)
    split_seed = seed if s.split_seed is None else s.split_seed
    key = (s.dataset, s.resolution, s.max_train, split_seed)
    if key not in _data_cache:
        _data_cache[key] = load_dataset(s.dataset, seed=split_seed, data_dir=data_dir, resolution=s.resolution,
                                        max_train=s.max_train)
    spec = loads(spec_yaml)
    result = train_and_evaluate(spec, _data_cache[key], TrainSettings(epochs=s.epochs, batch_size=s.batch_size,
                                                                      lr=s.lr, seed=seed, device="cpu", threads=1))
    scored = result.curve[-s.score_epochs:]
    return {"tag": s.tag(seed), "spec_hash": spec_hash(spec), "accuracy": sum(scored) / len(scored),
            "seconds": result.seconds}


def run_all(jobs: list[tuple[Spec, Setting, int]], workers: int, data_dir: str | None, label: str) -> Iterator[dict]:
    """Train ``jobs`` in ``workers`` processes, yielding each result as it finishes."""
    from tqdm import tqdm

    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(train_one, dumps(spec), asdict(setting), seed, data_dir) for spec, setting, seed in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc=label, file=sys.stderr,
                           disable=not sys.stderr.isatty()):
            yield future.result()


def cached_runs(cache_file: Path, jobs: list[tuple[Spec, Setting, int]], workers: int, data_dir: str | None,
                label: str) -> dict[tuple[str, str], dict]:
    """Accuracy per (setting tag, spec hash) for ``jobs``, training only those not in ``cache_file`` yet.

    Each finished training is written at once (atomically), so an interrupted bench loses nothing.
    """
    from nas.io import write_text

    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    todo = [(spec, s, seed) for spec, s, seed in jobs if spec_hash(spec) not in cache.get(s.tag(seed), {})]
    if todo:
        RESULTS.mkdir(exist_ok=True)
        for row in run_all(todo, workers, data_dir, label):
            cache.setdefault(row["tag"], {})[row["spec_hash"]] = {"accuracy": row["accuracy"],
                                                                  "seconds": row["seconds"]}
            write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    return {(s.tag(seed), spec_hash(spec)): cache[s.tag(seed)][spec_hash(spec)] for spec, s, seed in jobs}


def reference_setting(args) -> Setting:
    """Fashion-MNIST at its own 28 px (or the side the space needs, if larger: osa's 29)."""
    from nas.space import needed_resolution

    side = max(28, needed_resolution(load_space(args.space)))
    return Setting("reference", "fashion-mnist-full", side, args.ref_epochs, max_train=args.ref_images, batch_size=64)


def kendall(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def bootstrap_picks(count: int, seed: int, rounds: int = 2000):
    """Index arrays resampling ``count`` architectures with replacement, ``rounds`` times."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.integers(0, count, count) for _ in range(rounds))


def kendall_interval(a: list[float], b: list[float], level: float = 0.9) -> tuple[float, float]:
    """A bootstrap interval of Kendall tau over the architectures: with 24 of them, tau itself is uncertain
    by about +-0.15, and two settings whose intervals overlap are not told apart by this bench."""
    import numpy as np

    x, y = np.asarray(a), np.asarray(b)
    taus = [kendall(list(x[pick]), list(y[pick])) for pick in bootstrap_picks(len(x), seed=0)]
    low, high = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_better(mine: list[list[float]], default: list[list[float]], ref: list[float]) -> float:
    """The share of bootstrap resamples of the architectures in which ``mine`` ranks closer to the reference than
    ``default`` does, both on the same resample: about 0.5 means no difference is seen. Each is a list of
    rankings (the mean of seeds alone, or each seed's own); its tau on a resample is the mean of theirs."""
    import numpy as np

    a, b, r = np.asarray(mine), np.asarray(default), np.asarray(ref)

    def tau(rankings, pick) -> float:
        return sum(kendall(list(x[pick]), list(r[pick])) for x in rankings) / len(rankings)

    wins = [tau(a, pick) > tau(b, pick) for pick in bootstrap_picks(len(r), seed=1)]
    return sum(wins) / len(wins)


def top(scores: dict[str, float], k: int) -> set[str]:
    return set(sorted(scores, key=lambda h: scores[h], reverse=True)[:k])


def by_seed(setting: Setting, runs: dict, hashes: list[str], seeds) -> dict[int, dict[str, float]]:
    return {seed: {h: runs[(setting.tag(seed), h)]["accuracy"] for h in hashes} for seed in seeds}


def seed_mean(seeds: dict[int, dict[str, float]], chosen=None) -> dict[str, float]:
    """Each architecture's accuracy averaged over the ``chosen`` seeds (default: all of them)."""
    chosen = list(seeds) if chosen is None else list(chosen)
    return {h: sum(seeds[seed][h] for seed in chosen) / len(chosen) for h in next(iter(seeds.values()))}


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def reliability(seeds: dict[int, dict[str, float]], hashes: list[str]) -> float:
    """How well the mean of these seeds' rankings would repeat under other seeds: the mean Spearman rho between
    two seeds, stepped up to the number of seeds by the Spearman-Brown formula k r / (1 + (k - 1) r)."""
    from itertools import combinations

    pairs = list(combinations(seeds, 2))
    r = sum(spearman([seeds[a][h] for h in hashes], [seeds[b][h] for h in hashes]) for a, b in pairs) / len(pairs)
    k = len(seeds)
    return k * r / (1 + (k - 1) * r)


def without_seed_noise(seeds: dict[int, dict[str, float]], ref_seeds: dict[int, dict[str, float]]) -> float:
    """Spearman's correction for attenuation: rho(the proxy's seed mean, the reference's seed mean) divided by the
    square root of both means' reliabilities. An estimate of how a proxy without seed noise would rank against a
    reference without any: settings that differ in it rank different things, settings that differ only in the
    measured tau differ in their noise. (Over 1 when noise is underestimated: an estimate, not a bound.)"""
    hashes = list(next(iter(ref_seeds.values())))
    mean, ref = seed_mean(seeds), seed_mean(ref_seeds)
    both = reliability(seeds, hashes) * reliability(ref_seeds, hashes)
    rho = spearman([mean[h] for h in hashes], [ref[h] for h in hashes])
    return rho / both ** 0.5 if both > 0 else float("nan")


def seed_sd(accuracies: dict[int, dict[str, float]], hashes: list[str]) -> float:
    """The accuracy's standard deviation between seeds 0 and 1, from the mean absolute difference
    (E|a - b| = 2 sd / sqrt(pi))."""
    import math

    a, b = [accuracies[0][h] for h in hashes], [accuracies[1][h] for h in hashes]
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a) * math.sqrt(math.pi) / 2


def top_quarter_tau(seeds: dict[int, dict[str, float]], hashes: list[str]) -> float:
    """Kendall tau between seeds 0 and 1 among the top quarter by their mean: where a search picks its winner,
    and where candidates are closest."""
    mean = seed_mean(seeds)
    best = sorted(hashes, key=lambda h: mean[h], reverse=True)[:max(4, len(hashes) // 4)]
    return kendall([seeds[0][h] for h in best], [seeds[1][h] for h in best])


def cost_factors(specs: list[Spec], w: float) -> dict[str, float]:
    """Spec hash -> the reward's cost factor FLOPs^w, the cost counted at the spec's own resolution as a search
    counts it (T scales every reward alike and is left out)."""
    return {spec_hash(spec): float(count_cost(spec).flops) ** w for spec in specs}


def rewarded(accuracies: dict[int, dict[str, float]], weight: dict[str, float]) -> dict[int, dict[str, float]]:
    """Each seed's accuracies times each architecture's cost factor (FLOPs^w): the rewards a search ranks."""
    return {seed: {h: a * weight[h] for h, a in by_hash.items()} for seed, by_hash in accuracies.items()}


def summarise(name: str, accuracies: dict[int, dict[str, float]], seconds: float,
              ref_seeds: dict[int, dict[str, float]], weight: dict[str, float]) -> dict:
    """One setting's row: ``accuracies`` per seed and ``ref_seeds`` (already rewarded) ranked as rewards."""
    seeds = rewarded(accuracies, weight)
    ref = seed_mean(ref_seeds)
    hashes = list(ref)
    mean = seed_mean(seeds, SEEDS)  # two seeds, whatever --proxy-seeds: the column keeps one meaning
    accuracy = seed_mean(accuracies, SEEDS)
    return {
        "setting": name,
        "seconds": seconds,
        "tau_reference": kendall([mean[h] for h in hashes], [ref[h] for h in hashes]),
        "tau_reference_interval": kendall_interval([mean[h] for h in hashes], [ref[h] for h in hashes]),
        # What a search sees: one seed per candidate (averaged over which seed that is).
        "tau_reference_one_seed": sum(kendall([seeds[seed][h] for h in hashes], [ref[h] for h in hashes])
                                      for seed in SEEDS) / len(SEEDS),
        "tau_seeds": kendall([seeds[0][h] for h in hashes], [seeds[1][h] for h in hashes]),
        "tau_split_half": split_half(seeds),
        "tau_all_pairs": all_pairs(seeds),
        "tau_top_quarter": top_quarter_tau(seeds, hashes),
        "seed_sd": seed_sd(accuracies, hashes),
        "top3_in_top5": len(top(ref, 3) & top(mean, 5)),
        "rho_without_noise": without_seed_noise(seeds, ref_seeds),
        "accuracy_range": (min(accuracy.values()), max(accuracy.values())),
        "mean": mean,
        "seeds": seeds,
    }


def split_half(seeds: dict[int, dict[str, float]]) -> float:
    """Kendall tau between the mean of seeds 0-1 and the mean of seeds 2-3 (nan with fewer than 4 seeds): how far
    a two-seed mean repeats itself under two other seeds."""
    if len(seeds) < 4:
        return float("nan")
    first, second = seed_mean(seeds, [0, 1]), seed_mean(seeds, [2, 3])
    return kendall([first[h] for h in first], [second[h] for h in first])


def all_pairs(seeds: dict[int, dict[str, float]]) -> float:
    """Kendall tau between two seeds' rankings, the mean over every pair of seeds (seeds 0 and 1 are one pair)."""
    from itertools import combinations

    pairs = list(combinations(seeds, 2))
    hashes = list(seeds[0])
    return sum(kendall([seeds[a][h] for h in hashes], [seeds[b][h] for h in hashes]) for a, b in pairs) / len(pairs)


def reference_noise(name: str, accuracies: dict[int, dict[str, float]], seconds: float,
                    weight: dict[str, float]) -> dict:
    """The reference measured against itself, in the proxies' columns, so its noise reads as a ceiling.

    "vs reference (one seed)" is each seed against the mean of the other seeds (leave one out); "vs reference
    (mean of seeds)" is the mean of seeds 0 and 1 against the mean of seeds 2 and 3 (split half, with 4+ seeds):
    how far a two-seed mean, like the proxies' column, can agree with an independent one.
    """
    seeds = rewarded(accuracies, weight)

    def others_than(seed: int) -> dict[str, float]:
        return seed_mean(seeds, [other for other in seeds if other != seed])

    others = others_than(0)
    leave_one_out = sum(kendall(list(seeds[seed].values()), list(others_than(seed).values()))
                        for seed in seeds) / len(seeds)
    halves = split_half(seeds)
    accuracy = seed_mean(accuracies)
    return {
        "setting": name,
        "seconds": seconds,
        "tau_reference": halves,
        "tau_reference_interval": None,
        "tau_reference_one_seed": leave_one_out,
        "tau_seeds": kendall(list(seeds[0].values()), list(seeds[1].values())),
        "tau_split_half": halves,
        "tau_all_pairs": all_pairs(seeds),
        "tau_top_quarter": top_quarter_tau(seeds, list(seeds[0])),
        "seed_sd": seed_sd(accuracies, list(seeds[0])),
        "top3_in_top5": len(top(others, 3) & top(seeds[0], 5)),
        "accuracy_range": (min(accuracy.values()), max(accuracy.values())),
    }


def markdown(summaries: list[dict], reference_row: dict, args, ref: dict[str, float], cost_only: float) -> str:
    split = args.proxy_seeds >= 4
    which = f" (samples {args.skip_archs + 1}-{args.skip_archs + args.archs})" if args.skip_archs else ""
    side = reference_setting(args).resolution
    ranked = ("accuracy alone" if args.w == 0 else
              f"the reward ACC x FLOPs^w at w = {args.w:g} (FLOPs at each architecture's own resolution)")
    lines = [f"{args.archs} architectures from the {args.space} space{which}, ranked by {ranked}. "
             f"Reference: fashion-mnist-full, "
             f"{args.ref_images} training images at {side} px, {args.ref_epochs} epochs, mean of seeds "
             f"0..{args.ref_seeds - 1} (held-out "
             f"top-1 {min(ref.values()):.3f} to {max(ref.values()):.3f}). Proxies under seeds "
             f"{', '.join(map(str, range(args.proxy_seeds)))}, one torch thread per trial, worker processes on a "
             f"2-core machine. Accuracy range and seed sd are in accuracy. Mean of seeds: the two seeds' mean "
             f"accuracy "
             f"against the reference, with a 90% bootstrap interval over the architectures; one seed: each seed "
             f"alone (what a search sees), averaged over the two. The first row is the reference against itself: "
             f"each seed against the mean of the others (one-seed column), the mean of seeds 0-1 against the mean "
             f"of seeds 2-3 (mean-of-seeds column), seed 0 against seed 1: the noise through which every proxy's "
             f"tau is measured. Top quarter: tau between seeds 0 and 1 among the best quarter by their mean, "
             f"where a winner is picked; seed sd: the accuracy's standard deviation between seeds 0 and 1 (pairs "
             f"further apart than about twice it are ordered alike by both seeds). Closer than the default: the "
             f"share of 2,000 bootstrap resamples of the "
             f"architectures in which the setting's tau beats the default's on the same resample, for the mean of "
             f"seeds / for one seed (0.5: no difference). Rho without seed noise: Spearman's rho of the two means "
             f"corrected for both sides' seed noise (an estimate of what a noise-free proxy would reach against "
             f"a noise-free reference)."
             + ("" if args.w == 0 else f" FLOPs alone: tau of the cost factor alone against the reference's rewards "
                f"(as if every architecture were equally accurate), the baseline a proxy must beat: {cost_only:.2f}.")
             + (" All pairs: tau between two seeds, the mean over every pair of seeds (seeds 0 and 1 are one). "
                "Between two-seed means: tau between the mean of seeds 0-1 and the mean of seeds 2-3, how far "
                "a two-seed mean (what the final selection ranks by) repeats itself; in the reference's row the "
                "same as its mean-of-seeds column." if split else ""), "",
             "| setting | s / candidate | tau vs reference (mean of seeds) | tau vs reference (one seed) "
             "| tau between seeds | " + ("tau between seeds, all pairs | tau between two-seed means | " if split else "")
             + "tau between seeds, top quarter | seed sd | reference top 3 in top 5 | accuracy range "
             "| closer than the default (mean / one seed) | rho without seed noise |",
             "|---|---:|---:|---:|---:|" + ("---:|---:|" if split else "") + "---:|---:|---:|---|---:|---:|"]
    for s in [reference_row, *summaries]:
        low, high = s["accuracy_range"]
        interval = s["tau_reference_interval"]
        mean_seeds = f"{s['tau_reference']:.2f}" + (f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else "")
        lines.append(f"| {s['setting']} | {s['seconds']:.1f} | {mean_seeds} | "
                     f"{s['tau_reference_one_seed']:.2f} | {s['tau_seeds']:.2f} | "
                     + (f"{s['tau_all_pairs']:.2f} | {s['tau_split_half']:.2f} | " if split else "")
                     + f"{s['tau_top_quarter']:.2f} | "
                     f"{s['seed_sd']:.3f} | {s['top3_in_top5']}/3 | "
                     f"{low:.3f}-{high:.3f} | {s.get('better_than_default', '')} | "
                     + (f"{s['rho_without_noise']:.2f} |" if "rho_without_noise" in s else " |"))
    return "\n".join(lines)


def mean_seconds(runs: dict, keys) -> float:
    return sum(runs[key]["seconds"] for key in keys) / len(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mnas", choices=space_names())
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--skip-archs", type=int, default=0,
                        help="leave out the first N sampled architectures (a fresh set to confirm a choice on)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--ref-images", type=int, default=20000)
    parser.add_argument("--ref-epochs", type=int, default=4)
    parser.add_argument("--ref-seeds", type=int, default=4, help="the reference is the mean over this many seeds (>= 2)")
    parser.add_argument("--proxy-seeds", type=int, default=2,
                        help="train each proxy setting under this many seeds (>= 2; 4 adds tau between two-seed means)")
    parser.add_argument("--name", help="the tables' file name under bench/results, without .md or .csv (default: "
                        "proxy_fidelity, then _SPACE where not mnas, then _archsA-B unless mnas's first 24)")
    parser.add_argument("--settings", default=MEASURED, help="comma-separated (default: those measured so far): "
                        + ", ".join(SETTINGS))
    parser.add_argument("--data-dir", help="where the full Fashion-MNIST IDX files are (default: nas's search path)")
    parser.add_argument("--w", type=float, default=-0.7,
                        help="rank the reward ACC x FLOPs^w (default: nas's -0.7); 0 ranks accuracy alone")
    args = parser.parse_args()
    if args.w > 0:
        parser.error(f"--w: got {args.w:g}; allowed: 0 or less (a positive exponent rewards cost, as nas search refuses)")
    unknown = [name for name in args.settings.split(",") if name not in SETTINGS]
    if unknown:
        parser.error(f"--settings: unknown {unknown}; allowed: {', '.join(SETTINGS)}")
    for option, value in (("--ref-seeds", args.ref_seeds), ("--proxy-seeds", args.proxy_seeds)):
        if value < 2:
            parser.error(f"{option}: got {value}; allowed: 2 or more (a tau between seeds needs two)")
    if args.name is not None and (not args.name or "/" in args.name or args.name.startswith(".")):
        parser.error(f"--name: got {args.name!r}; allowed: a file name without a folder, not starting with a dot")
    chosen = [at_space_side(SETTINGS[name], args.space) for name in args.settings.split(",")]

    start = time.perf_counter()
    # The first --skip-archs samples are left out: a fresh set on which a setting chosen on the first can be
    # confirmed (choosing the best of many settings on one set flatters it).
    specs = sample_specs(args.skip_archs + args.archs, space_name=args.space)[args.skip_archs:]
    # proxy_fidelity.md is mnas's first 24, the README's first table; every other run names its space and range
    plain = args.space == "mnas" and not args.skip_archs and args.archs == 24
    name = args.name or ("proxy_fidelity" + ("" if args.space == "mnas" else f"_{args.space}")
                         + ("" if plain else f"_archs{args.skip_archs + 1}-{args.skip_archs + args.archs}"))
    name += "" if args.w == -0.7 else "_accuracy" if args.w == 0 else f"_w{args.w:g}"
    hashes = [spec_hash(spec) for spec in specs]
    weight = cost_factors(specs, args.w)
    ref_setting = reference_setting(args)
    ref_seeds = range(args.ref_seeds)
    ref_runs = cached_runs(REFERENCE_CACHE, [(spec, ref_setting, seed) for seed in ref_seeds for spec in specs],
                           args.jobs, args.data_dir, "reference")
    ref_by_seed = by_seed(ref_setting, ref_runs, hashes, ref_seeds)
    ref_rewards = rewarded(ref_by_seed, weight)
    ref = seed_mean(ref_rewards)
    reference_row = reference_noise(f"reference itself ({ref_setting.tag(0).rsplit('-seed', 1)[0]})", ref_by_seed,
                                    mean_seconds(ref_runs, list(ref_runs)), weight)

    proxy_seeds = range(args.proxy_seeds)
    proxy_runs = cached_runs(PROXY_CACHE, [(spec, s, seed) for s in chosen for seed in proxy_seeds for spec in specs],
                             args.jobs, args.data_dir, "proxies")
    summaries = [summarise(s.name, by_seed(s, proxy_runs, hashes, proxy_seeds),
                           mean_seconds(proxy_runs, [(s.tag(seed), h) for seed in proxy_seeds for h in hashes]),
                           ref_rewards, weight)
                 for s in chosen]
    default = default_setting(args.space)
    base = next((x for x in summaries if default and x["setting"] == default.name), None)
    for summary in summaries:
        if base is None:
            break
        if summary is base:
            continue
        ref_scores = [ref[h] for h in hashes]
        as_lists = lambda scores: [scores[h] for h in hashes]  # noqa: E731
        share_mean = paired_better([as_lists(summary["mean"])], [as_lists(base["mean"])], ref_scores)
        share_one = paired_better([as_lists(summary["seeds"][seed]) for seed in SEEDS],
                                  [as_lists(base["seeds"][seed]) for seed in SEEDS], ref_scores)
        summary["better_than_default"] = f"{share_mean:.2f} / {share_one:.2f}"
    if base is not None:
        base["setting"] += " (the default)"
    cost_only = kendall([weight[h] for h in hashes], [ref[h] for h in hashes]) if args.w else float("nan")
    table = markdown(summaries, reference_row, args, seed_mean(ref_by_seed), cost_only)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(table + "\n")
    with (RESULTS / f"{name}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "seed", "spec_hash", "accuracy", "seconds"])
        for (tag, h), run in sorted({**ref_runs, **proxy_runs}.items()):
            setting_tag, seed = tag.rsplit("-seed", 1)
            writer.writerow([setting_tag, seed, h, run["accuracy"], run["seconds"]])
    print(table)
    print(f"\n{time.perf_counter() - start:.0f} s; wrote bench/results/{name}.{{md,csv}}")


if __name__ == "__main__":
    main()
