"""Which architecture does a search end with, judged by the reference? Each proxy setting's pick, and what the
final selection and its 3x epochs change.

    .venv/bin/python bench/final_selection.py [--subset 24] [--resamples 2000] [--top-k 3] [--w -0.7]
                                              [--settings NAME,NAME] [--proxy NAME --final NAME]

No training: it replays what `nas search space=mnas` decides on bench/proxy_fidelity.py's cached trainings of
its 48 mnas architectures. Each resample draws ``--subset`` of the 48 as one search's finished trials and a
search seed s. The search ranks them by the reward of its own training under seed s, as nas does, and picks:

- per proxy setting (``--settings``, each trained under seeds 0 and 1; s is 0 or 1): the best by proxy reward
  (``final_top_k=0``);
- FLOPs alone: the best by the cost factor alone, as if every candidate were equally accurate (the baseline
  a proxy must beat);
- for ``--proxy`` (mnas's, Fashion-MNIST at 14 px, 3 epochs on 4,000 images; last round's: ``--proxy
  digits-16px-4ep --final digits-16px-12ep``) and ``--final`` (its final selection's 3x epochs), each
  trained under seeds 0 and 1, with the search's seed 0 (the final stage's seeds are then 0 and 1): the final
  selection's pick, the top ``--top-k`` by proxy reward re-ranked by the reward of the two seeds' mean accuracy
  at ``--final``'s epochs (nas's default) or at the proxy's own (``final_epochs=3``), and the best of those
  finalists by the reference (what a perfect final stage picks).

The truth is the reference (4 epochs on 20,000 full Fashion-MNIST images at 28 px, the mean of four seeds) put
through the same reward. Per way of choosing it prints the pick's reference reward as a share of the subset's
best (1.0: the best was picked) and how often the pick is the subset's best. The final stage's seeds here draw
their own held-out split, where nas's share the search's; bench/proxy_fidelity.py showed that makes no
difference (``-split0`` rows). The reward: ACC x FLOPs^w at ``--w`` (-0.7, nas's default), each architecture's
FLOPs counted at its own resolution as a search counts them. The resamples share architectures, so read a
difference between two ways of choosing from the paired line, not from the two means alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_fidelity import (  # noqa: E402
    PROXY_CACHE,
    REFERENCE_CACHE,
    RESULTS,
    SETTINGS,
    cost_factors,
    reference_setting,
    sample_specs,
)

from nas.spec import spec_hash  # noqa: E402

# proxy_fidelity.py's mnas reference: 4 epochs on 20,000 full Fashion-MNIST images
REFERENCE = reference_setting(argparse.Namespace(space="mnas", ref_epochs=4, ref_images=20000))
#: mnas's proxy as `nas search` trains it, and that proxy at its final selection's epochs (3x)
DEFAULT_PROXY, DEFAULT_FINAL = "fmnist-14px-3ep-4k", "fmnist-14px-9ep-4k"
DEFAULT_SETTINGS = ("digits-16px-4ep,digits-16px-4ep-lr0.0005,digits-8px-4ep,digits-16px-12ep,fmnist-14px-2ep,fmnist-14px-2ep-4k,"
                    "fmnist-14px-3ep-4k")


def accuracies(cache: dict, tag_of, hashes: list[str], seeds=range(4)) -> np.ndarray:
    """seeds x architectures: held-out accuracy; a missing training names the bench run that makes it."""
    try:
        return np.array([[cache[tag_of(seed)][h]["accuracy"] for h in hashes] for seed in seeds])
    except KeyError as missing:
        sys.exit(f"final_selection: no cached training for {missing}; run bench/proxy_fidelity.py --archs 48 with "
                 "that setting first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", type=int, default=24, help="architectures one search has finished (of 48)")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--top-k", type=int, default=3, help="the final stage's candidates (final_top_k)")
    parser.add_argument("--w", type=float, default=-0.7, help="the reward's exponent (0: accuracy alone)")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS,
                        help="proxy settings whose search picks are compared (each cached under seeds 0 and 1)")
    parser.add_argument("--proxy", default=DEFAULT_PROXY, help="the search's proxy whose final stage is replayed")
    parser.add_argument("--final", default=DEFAULT_FINAL, help="that proxy at the final selection's epochs")
    args = parser.parse_args()
    if args.w > 0:
        parser.error(f"--w: got {args.w:g}; allowed: 0 or less (a positive exponent rewards cost, as nas search refuses)")
    unknown = [name for name in [*args.settings.split(","), args.proxy, args.final] if name not in SETTINGS]
    if unknown:
        parser.error(f"--settings: unknown {unknown}; allowed: {', '.join(SETTINGS)}")

    specs = sample_specs(48, space_name="mnas")
    hashes = [spec_hash(s) for s in specs]
    proxies, reference = json.loads(PROXY_CACHE.read_text()), json.loads(REFERENCE_CACHE.read_text())
    searches = {name: accuracies(proxies, SETTINGS[name].tag, hashes, seeds=(0, 1)) for name in args.settings.split(",")}
    four = accuracies(proxies, SETTINGS[args.proxy].tag, hashes, seeds=(0, 1))
    longer = accuracies(proxies, SETTINGS[args.final].tag, hashes, seeds=(0, 1))
    weights = cost_factors(specs, args.w)
    factor = np.array([weights[h] for h in hashes])
    truth = accuracies(reference, REFERENCE.tag, hashes).mean(axis=0) * factor

    epochs = SETTINGS[args.final].epochs, SETTINGS[args.proxy].epochs
    finals = (f"{args.proxy}, final selection at {epochs[0]} epochs (nas's default)",
              f"{args.proxy}, final selection at {epochs[1]} epochs", f"{args.proxy}, the best finalist by the reference")
    ways = [*(f"{name}, proxy only" for name in searches), "FLOPs alone", *finals]
    share: dict[str, list[float]] = {w: [] for w in ways}
    rng = np.random.default_rng(0)
    for _ in range(args.resamples):
        trials = rng.choice(len(specs), args.subset, replace=False)
        best = truth[trials].max()
        seed = int(rng.integers(0, 2))
        picks = {f"{name}, proxy only": int(trials[np.argmax(acc[seed, trials] * factor[trials])])
                 for name, acc in searches.items()}
        picks["FLOPs alone"] = int(trials[np.argmax(factor[trials])])
        finalists = trials[np.argsort(-four[0, trials] * factor[trials], kind="stable")[:args.top_k]]
        for way, score in zip(finals, (longer.mean(axis=0) * factor, four.mean(axis=0) * factor, truth)):
            picks[way] = int(finalists[np.argmax(score[finalists])])
        for way, pick in picks.items():
            share[way].append(truth[pick] / best)

    got = {way: np.array(values) for way, values in share.items()}
    lines = [f"{args.resamples} simulated searches, each {args.subset} of the 48 mnas architectures of "
             f"bench/proxy_fidelity.py; reward ACC x FLOPs^{args.w:g}; final stage: the top {args.top_k} by proxy "
             "reward under two seeds. Truth: the four-seed reference put through the same reward.", "",
             "| way of choosing | pick's reference reward / the subset's best (mean) | the subset's best picked |",
             "|---|---:|---:|"]
    lines += [f"| {way} | {got[way].mean():.3f} | {np.mean(got[way] == 1.0):.0%} |" for way in ways]
    twelve_vs_four = got[finals[0]] - got[finals[1]]
    lines += ["", f"Final selection at {epochs[0]} epochs against {epochs[1]}, same resamples: a better pick in "
                  f"{np.mean(twelve_vs_four > 0):.0%}, a worse one in {np.mean(twelve_vs_four < 0):.0%}, the same in "
                  f"{np.mean(twelve_vs_four == 0):.0%}."]
    text = "\n".join(lines) + "\n"
    print(text)
    name = ("final_selection" + ("" if args.w == -0.7 else f"_w{args.w:g}")
            + ("" if args.proxy == DEFAULT_PROXY else f"_{args.proxy}"))
    (RESULTS / f"{name}.md").write_text(text)
    print(f"wrote bench/results/{name}.md")


if __name__ == "__main__":
    main()
