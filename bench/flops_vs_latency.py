"""The seeds' lesson, measured: does searching on latency pick other networks than searching on FLOPs?

    .venv/bin/python bench/flops_vs_latency.py [--spaces mnas lcnet] [--trials 16] [--epochs 3] [--target-flops 300M]

For each space: a search with objective=flops (target --target-flops), then one with objective=latency
whose target is the predicted latency of the FLOPs search's winner (same trials, epochs, seed, data: a
matched budget). Each winner's FLOPs, measured latency (its own resolution, batch 1, 1 torch thread,
thread CPU time; the middle of 3 readings) and accuracy are printed, then the decisions where the two winners differ.
Latency comes from the latency table (latency=predicted, the default), built in a fresh temporary
$NAS_CACHE (``--cache`` to keep one) and calibrated on the space's samples as a search calibrates it;
the target is predicted the same way. Each winner's predicted latency is printed beside its measurement.

Small budgets (the defaults take minutes on two cores, each space's own proxy): read the differences
as what each objective pushes towards, not as a verdict. Writes bench/results/flops_vs_latency.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["mnas", "lcnet"])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)  # 1 epoch leaves mnas/lcnet near chance
    parser.add_argument("--target-flops", default="300M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="cache directory for the latency table (default: a temporary one)")
    parser.add_argument("--out", default=str(HERE / "results"))
    return parser.parse_args()


def search(space: str, objective_pairs: list[str], args, runs: Path):
    from nas.search import run_search
    from nas.search.outputs import best_record
    from nas.spec import loads

    name = objective_pairs[0].split("=")[1]
    result = run_search([f"space={space}", f"trials={args.trials}", f"epochs={args.epochs}", f"seed={args.seed}",
                         f"out={runs / f'{space}-{name}'}", *objective_pairs], progress=False, say=lambda _: None)
    best = result.best or best_record(result.records)  # the final selection's winner: what best.yaml holds
    return loads(best["spec_yaml"]), best


def predicted(space: str, spec) -> float:
    """The spec's latency as a latency search of ``space`` predicts it (the table calibrated on the space's
    samples first, then the overhead held fixed): the search's own Context does it."""
    from functools import partial

    from nas.search.candidate import Context
    from nas.search.config import SearchConfig
    from nas.space import load_space, sample

    context = Context(SearchConfig(objective="latency"), partial(sample, load_space(space)), None)
    return context.predicted_latency(spec, "cpu")


def describe(space: str, spec, best) -> dict:
    from nas.cost import count_cost
    from nas.evaluate.latency import measure_latency

    readings = [measure_latency(spec, threads=1) for _ in range(3)]  # one reading moves 10-30 % on a shared VM
    medians = sorted(r.median_ms for r in readings)
    return {"flops": count_cost(spec).flops, "latency_ms": medians[1], "range": f"{medians[0]:.2f}-{medians[2]:.2f}",
            "predicted_ms": predicted(space, spec), "accuracy": best["accuracy"],
            "hardware": f"{readings[0].hardware} ({readings[0].clock})"}


def differences(a, b) -> list[str]:
    """Stage by stage, the fields where two specs of one space differ (and the spec-level ones)."""
    from nas.spec import to_dict

    da, db = to_dict(a), to_dict(b)
    out = [f"{key}: {da.get(key)} -> {db.get(key)}" for key in ("width_multiplier", "resolution")
           if da.get(key) != db.get(key)]
    ha, hb = da.get("head", {}), db.get("head", {})
    out += [f"head {k}: {ha.get(k)} -> {hb.get(k)}" for k in sorted(set(ha) | set(hb)) if ha.get(k) != hb.get(k)]
    for i, (sa, sb) in enumerate(zip(da["stages"], db["stages"])):
        changed = {k: (sa.get(k), sb.get(k)) for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)}
        if changed:
            out.append(f"stage {i}: " + ", ".join(f"{k} {x} -> {y}" for k, (x, y) in changed.items()))
    return out


def main() -> int:
    args = parse_args()
    os.environ["NAS_CACHE"] = args.cache or tempfile.mkdtemp(prefix="nas-flops-vs-latency-cache-")
    from nas.io import write_text

    runs = Path(tempfile.mkdtemp(prefix="nas-flops-vs-latency-"))
    header = (f"# FLOPs vs latency as the search objective\n\n{args.trials} trials x {args.epochs} epoch(s) "
              f"per search, seed {args.seed}, each space's default proxy and final selection; target "
              f"{args.target_flops} FLOPs, and for latency the FLOPs winner's predicted latency. Each winner is "
              "best.yaml (the final selection's); its accuracy is the final selection's mean over seeds.\n")
    lines = [header]
    for space in args.spaces:
        flops_spec, flops_best = search(space, ["objective=flops", f"target_flops={args.target_flops}"], args, runs)
        target = predicted(space, flops_spec)
        latency_spec, latency_best = search(space, ["objective=latency", f"target={target:.3f}ms"], args, runs)
        rows = [("flops", describe(space, flops_spec, flops_best)),
                ("latency", describe(space, latency_spec, latency_best))]
        lines.append(f"## {space} (latency target {target:.2f} ms)\n")
        lines.append("| objective | FLOPs (M) | measured latency (ms) | 3 readings (ms) | predicted (ms) | error | "
                     "accuracy |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for objective, row in rows:
            error = 100 * (row["predicted_ms"] - row["latency_ms"]) / row["latency_ms"]
            lines.append(f"| {objective} | {row['flops'] / 1e6:.0f} | {row['latency_ms']:.2f} | {row['range']} | "
                         f"{row['predicted_ms']:.2f} | {error:+.0f} % | {row['accuracy']:.3f} |")
        lines.append(f"\nmeasured on {rows[0][1]['hardware']}; the latency search chose differently:\n")
        lines += [f"- {d}" for d in differences(flops_spec, latency_spec)] or ["- nothing: the same network"]
        lines.append("")
        print("\n".join(lines[-(len(rows) + 8):]), flush=True)
    text = "\n".join(lines) + "\n"
    write_text(Path(args.out) / "flops_vs_latency.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
