"""How fast is the analytic cost model? Specs per second of ``nas.count_cost`` on EfficientNet-B0.

    .venv/bin/python bench/cost_speed.py [--n 5000] [--repeats 5]

A search calls ``count_cost`` on every sampled architecture (hard limits, the reward), so it must cost
next to nothing. The model caches at three levels: a whole resolved spec (``spec.resolve``), a stage
on a given input (``nas.spec.resolved._resolve_stage``) and a block on a given input (``cost.block_cost``). Each
workload below says which caches can help it; each number is the best of ``--repeats`` timed passes.
Times are this process's CPU time (``time.process_time``), so other work on a busy machine does not
skew them; torch runs on one thread so the comparison is one core against one core.

- cached:          the same Spec object again and again (the resolve cache hits).
- new objects:     a new Spec object each call (a new name), same architecture: stage and block caches hit.
- search-like:     random MnasNet-style variants of B0 (kernel, expansion, SE, repeats, width per stage),
                   starting from empty caches: what a search sees.
- cold:            every cache cleared before every call.
- FlopCounterMode: build the torch model and count one forward pass at 224 (the slow way to get FLOPs).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time

import nas
from nas import cost as cost_mod
from nas import spec as spec_mod


def clear_caches() -> None:
    """Empty every lru_cache of the spec package and the cost module (found by looking, so new caches count too)."""
    modules = [m for name, m in sys.modules.items() if name == "nas.spec" or name.startswith("nas.spec.")]
    for module in modules + [cost_mod]:
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def specs_per_second(specs, before_each=None) -> float:
    """count_cost over ``specs``; ``before_each`` (clearing caches) runs outside the timed part."""
    if before_each is None:
        start = time.process_time()
        for spec in specs:
            nas.count_cost(spec)
        return len(specs) / (time.process_time() - start)
    elapsed = 0.0
    for spec in specs:
        before_each()
        start = time.process_time()
        nas.count_cost(spec)
        elapsed += time.process_time() - start
    return len(specs) / elapsed


def search_like_variant(base: nas.Spec, rng: random.Random, index: int) -> nas.Spec:
    """B0 with each stage's kernel, expansion, SE, repeats and width drawn from MnasNet-like choices."""
    stages = []
    for stage in base.stages:
        block = dataclasses.replace(
            stage.block,
            kernel=rng.choice((3, 5)),
            expansion=rng.choice((1, 3, 6)) if stage.block.expansion != 1 else 1,
            se_ratio=rng.choice((0.0, 0.25)),
            out_channels=spec_mod.round_channels(stage.block.out_channels * rng.choice((0.75, 1.0, 1.25))),
        )
        repeats = max(1, stage.repeats + rng.choice((-1, 0, 1)))
        stages.append(spec_mod.Stage(block, repeats))
    return dataclasses.replace(base, name=f"variant-{index}", stages=tuple(stages))


def flop_counter_per_second(spec: nas.Spec, n: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    nas.build_model(spec).eval()(torch.randn(1, 3, 32, 32))  # warm-up: torch's first call is slow
    start = time.process_time()
    for _ in range(n):
        model = nas.build_model(spec).eval()
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(torch.randn(1, 3, spec.resolution, spec.resolution))
        counter.get_total_flops()
    return n / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="specs per timed pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per workload; the best counts")
    parser.add_argument("--torch-n", type=int, default=5, help="models built and counted with FlopCounterMode")
    args = parser.parse_args()

    base = nas.load_spec("efficientnet-b0")
    rng = random.Random(0)
    results: dict[str, float] = {}

    results["cached (same Spec object)"] = max(
        specs_per_second([base] * args.n) for _ in range(args.repeats))

    def new_objects():
        specs = [dataclasses.replace(base, name=f"b0-{i}") for i in range(args.n)]
        return specs_per_second(specs)
    results["new objects, same architecture"] = max(new_objects() for _ in range(args.repeats))

    def search_like():
        specs = [search_like_variant(base, rng, i) for i in range(args.n)]
        clear_caches()
        return specs_per_second(specs)
    results["search-like variants, caches start empty"] = max(search_like() for _ in range(args.repeats))

    def cold():
        specs = [dataclasses.replace(base, name=f"b0-{i}") for i in range(max(1, args.n // 10))]
        return specs_per_second(specs, before_each=clear_caches)
    results["cold (every cache cleared each call)"] = max(cold() for _ in range(args.repeats))

    torch_rate = flop_counter_per_second(base, args.torch_n)

    print(f"count_cost on efficientnet-b0 (FLOPs {nas.count_cost(base).flops:,} multiply-adds), "
          f"best of {args.repeats} passes")
    width = max(len(k) for k in results)
    for name, rate in results.items():
        print(f"  {name:<{width}}  {rate:>10,.0f} specs/s  {rate / torch_rate:>10,.0f}x FlopCounterMode")
    print(f"  {'FlopCounterMode (build + forward at 224)':<{width}}  {torch_rate:>10,.2f} specs/s  "
          f"(1 torch thread, {args.torch_n} models)")


if __name__ == "__main__":
    main()
