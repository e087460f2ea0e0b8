"""Does the proxy rank architectures the way a longer training on the real task does?

    .venv/bin/python bench/proxy_fidelity.py [--archs 24] [--jobs 2] [--ref-images 20000] [--ref-epochs 4]
                                             [--settings NAME,NAME] [--data-dir DIR]

Samples ``--archs`` distinct architectures from the mnas space (seed 0). The REFERENCE ranking is each
architecture's held-out top-1 after a longer training on the full Fashion-MNIST training set
(``fashion-mnist-full``: ``--ref-images`` images at 28 px, ``--ref-epochs`` epochs, one seed), the task a
Fashion-MNIST proxy stands for. Each candidate PROXY SETTING (a data set, a resolution, a number of
epochs, a training-subset size) then trains every architecture under two seeds. Per setting it prints:

- seconds per candidate (one torch thread, ``--jobs`` worker processes, on whatever else the machine runs),
- Kendall tau of the proxy's accuracy ranking (mean of the two seeds' accuracies) against the reference,
- Kendall tau between the two seeds' rankings (how much of the ranking is noise),
- how many of the reference's best three are in the proxy's top five.

The reference results are cached in bench/results/proxy_fidelity_reference.json (keyed by spec hash and
the reference settings), so re-running with other proxy settings costs only the proxies. The table goes
to bench/results/proxy_fidelity.md, every accuracy to bench/results/proxy_fidelity.csv.

Only accuracy is ranked: the reward's cost term is exact and the same in proxy and reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from nas.space import load_space, random_choices, sample
from nas.spec import Spec, dumps, loads, spec_hash

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_CACHE = RESULTS / "proxy_fidelity_reference.json"


@dataclass(frozen=True)
class Setting:
    name: str
    dataset: str
    resolution: int | None
    epochs: int
    max_train: int | None = None
    batch_size: int = 32


# The candidates: today's default (digits, 8 px) and Fashion-MNIST subsets at 14 and 28 px, shorter and longer.
SETTINGS = {s.name: s for s in (
    Setting("digits-8px-4ep", "digits", None, 4),
    Setting("fmnist-14px-2ep", "fashion-mnist", 14, 2),
    Setting("fmnist-14px-4ep", "fashion-mnist", 14, 4),
    Setting("fmnist-14px-4ep-4k", "fashion-mnist", 14, 4, max_train=4000),
    Setting("fmnist-28px-2ep", "fashion-mnist", 28, 2),
    Setting("fmnist-28px-4ep", "fashion-mnist", 28, 4),
    Setting("fmnist-28px-2ep-4k", "fashion-mnist", 28, 2, max_train=4000),
    Setting("fmnist-28px-3ep-4k", "fashion-mnist", 28, 3, max_train=4000),
)}

_data_cache: dict = {}


def sample_specs(count: int, seed: int = 0) -> list[Spec]:
    space = load_space("mnas")
    choose = random_choices(seed)
    specs, seen = [], set()
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
    key = (s.dataset, s.resolution, s.max_train, seed)
    if key not in _data_cache:
        _data_cache[key] = load_dataset(s.dataset, seed=seed, data_dir=data_dir, resolution=s.resolution,
                                        max_train=s.max_train)
    spec = loads(spec_yaml)
    result = train_and_evaluate(spec, _data_cache[key], TrainSettings(epochs=s.epochs, batch_size=s.batch_size,
                                                                      seed=seed, device="cpu", threads=1))
    return {"setting": s.name, "spec_hash": spec_hash(spec), "seed": seed, "accuracy": result.accuracy,
            "seconds": result.seconds}


def run_all(jobs: list[tuple[Spec, Setting, int]], workers: int, data_dir: str | None, label: str) -> list[dict]:
    from tqdm import tqdm

    rows = []
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(train_one, dumps(spec), asdict(setting), seed, data_dir) for spec, setting, seed in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc=label, file=sys.stderr,
                           disable=not sys.stderr.isatty()):
            rows.append(future.result())
    return rows


def reference(specs: list[Spec], args) -> dict[str, float]:
    setting = Setting("reference", "fashion-mnist-full", 28, args.ref_epochs, max_train=args.ref_images, batch_size=64)
    tag = f"{setting.dataset}-{setting.resolution}px-{setting.epochs}ep-{setting.max_train}-b{setting.batch_size}"
    cache = json.loads(REFERENCE_CACHE.read_text()) if REFERENCE_CACHE.exists() else {}
    known = cache.setdefault(tag, {})
    todo = [(spec, setting, 0) for spec in specs if spec_hash(spec) not in known]
    if todo:
        for row in run_all(todo, args.jobs, args.data_dir, "reference"):
            known[row["spec_hash"]] = {"accuracy": row["accuracy"], "seconds": row["seconds"]}
            RESULTS.mkdir(exist_ok=True)
            REFERENCE_CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True))
    print(f"reference: {tag}, {sum(known[spec_hash(s)]['seconds'] for s in specs) / len(specs):.1f} s per "
          f"architecture", file=sys.stderr)
    return {spec_hash(s): known[spec_hash(s)]["accuracy"] for s in specs}


def kendall(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def top(scores: dict[str, float], k: int) -> set[str]:
    return set(sorted(scores, key=scores.get, reverse=True)[:k])


def summarise(setting: Setting, rows: list[dict], ref: dict[str, float]) -> dict:
    by_seed = {seed: {r["spec_hash"]: r["accuracy"] for r in rows if r["seed"] == seed} for seed in (0, 1)}
    hashes = list(ref)
    mean = {h: (by_seed[0][h] + by_seed[1][h]) / 2 for h in hashes}
    return {
        "setting": setting.name,
        "seconds": sum(r["seconds"] for r in rows) / len(rows),
        "tau_reference": kendall([mean[h] for h in hashes], [ref[h] for h in hashes]),
        "tau_reference_seed0": kendall([by_seed[0][h] for h in hashes], [ref[h] for h in hashes]),
        "tau_seeds": kendall([by_seed[0][h] for h in hashes], [by_seed[1][h] for h in hashes]),
        "top3_in_top5": len(top(ref, 3) & top(mean, 5)),
        "accuracy_range": (min(mean.values()), max(mean.values())),
    }


def markdown(summaries: list[dict], args, ref: dict[str, float]) -> str:
    lines = [f"{args.archs} architectures from the mnas space. Reference: fashion-mnist-full, {args.ref_images} "
             f"training images at 28 px, {args.ref_epochs} epochs (held-out top-1 {min(ref.values()):.3f} to "
             f"{max(ref.values()):.3f}). Proxies under seeds 0 and 1, one torch thread per trial, {args.jobs} "
             f"worker processes on a 2-core machine.", "",
             "| proxy setting | s / candidate | tau vs reference (mean of seeds) | tau vs reference (one seed) "
             "| tau between seeds | reference top 3 in proxy top 5 | accuracy range |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for s in summaries:
        low, high = s["accuracy_range"]
        lines.append(f"| {s['setting']} | {s['seconds']:.1f} | {s['tau_reference']:.2f} | "
                     f"{s['tau_reference_seed0']:.2f} | {s['tau_seeds']:.2f} | {s['top3_in_top5']}/3 | "
                     f"{low:.3f}-{high:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--ref-images", type=int, default=20000)
    parser.add_argument("--ref-epochs", type=int, default=4)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated: " + ", ".join(SETTINGS))
    parser.add_argument("--data-dir", help="where the full Fashion-MNIST IDX files are (default: nas's search path)")
    args = parser.parse_args()
    chosen = [SETTINGS[name] for name in args.settings.split(",")]

    start = time.perf_counter()
    specs = sample_specs(args.archs)
    ref = reference(specs, args)
    rows = run_all([(spec, s, seed) for s in chosen for seed in (0, 1) for spec in specs], args.jobs, args.data_dir,
                   "proxies")
    summaries = [summarise(s, [r for r in rows if r["setting"] == s.name], ref) for s in chosen]
    table = markdown(summaries, args, ref)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "proxy_fidelity.md").write_text(table + "\n")
    with (RESULTS / "proxy_fidelity.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["setting", "spec_hash", "seed", "accuracy", "seconds"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["setting"], r["spec_hash"], r["seed"])))
        writer.writerows({"setting": "reference", "spec_hash": h, "seed": 0, "accuracy": a, "seconds": ""}
                         for h, a in ref.items())
    print(table)
    print(f"\n{time.perf_counter() - start:.0f} s; wrote bench/results/proxy_fidelity.{{md,csv}}")


if __name__ == "__main__":
    main()
