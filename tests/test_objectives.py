"""The reward's cost term: analytic counts (flops, params, mac) or measurements (latency, energy).

The decisive case: two architectures on which FLOPs and CPU latency disagree. Both have the same
skeleton (a stride-2 stem, then 8 layers of 32 channels on 8x8 maps) and differ in one decision, the
block kind:

- depthwise-heavy: MBConv (1x1 expand x3, 3x3 depthwise, squeeze-excitation, 1x1 project). 3.7M FLOPs
  (multiply-adds), but every layer is about a dozen small memory-bound operators;
- dense: a regular 3x3 conv. 4.8M FLOPs (1.3x more), three operators a layer (conv, batch norm, ReLU).

On this project's 2-core machine, one torch thread, the depthwise one is 3.8x to 13x slower (15 paired
measurements under a load average of 8.5; each measurement about 0.3 s). MAC (memory access cost)
agrees with latency here: 309k against 116k elements.
"""

import dataclasses

import pytest
import torch

import nas
from nas import reward as reward_fns
from nas.evaluate import energy, latency
from nas.evaluate.evaluators import Evaluation
from nas.search import resolve_config, run_search
from nas.search.candidate import Context
from nas.space import fixed_choices, load_space, sample
from nas.spec import spec_hash

FLIP_SPACE = """
name: flip
description: one decision between a depthwise-heavy and a dense architecture
spec:
  resolution: 16
  num_classes: 10
  stem: [{block: conv, out_channels: 32, kernel: 3, stride: 2, activation: relu}]
  head: {channels: 32, activation: relu}
per_stage:
  block: [mbconv, conv]
fixed_per_stage: {activation: relu, kernel: 3, expansion: 3, se_ratio: 0.25}   # conv ignores the last two
skeleton:
  - {out_channels: 32, repeats: 8, stride: 1}
"""


@pytest.fixture
def one_thread():
    """Latency on one thread, as MnasNet measured it on one phone core. With torch's two threads on a
    CPU other processes share, every small operator waits for both threads and a pass can take 100x
    longer; one thread keeps the measurement (and this test) quick and steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def flip_space(tmp_path):
    path = tmp_path / "flip.yaml"
    path.write_text(FLIP_SPACE)
    return path


def option(space_path, block):
    return sample(load_space(str(space_path)), fixed_choices({"stage0.block": block}))


def context(space_path, *pairs):
    config, _ = resolve_config([f"space={space_path}", *pairs])
    space = load_space(str(space_path))
    return Context(config, propose=lambda choose: sample(space, choose), evaluator=None)


def cost_of(ctx, spec):
    return ctx.objective_cost(spec, spec_hash(spec), nas.count_cost(spec))


def rewards(ctx, specs, accuracy=0.9):
    config = ctx.config
    return [reward_fns.reward(accuracy, cost_of(ctx, s), config.cost_target(), config.reward, config.w)
            for s in specs]


def test_latency_objective_flips_the_winner_where_flops_and_latency_disagree(flip_space, one_thread):
    depthwise, dense = option(flip_space, "mbconv"), option(flip_space, "conv")
    flops = context(flip_space, "objective=flops", "target_flops=4M")
    timed = context(flip_space, "objective=latency", "target=1ms")

    assert cost_of(flops, depthwise) < cost_of(flops, dense)           # fewer FLOPs ...
    assert cost_of(timed, depthwise) > 2 * cost_of(timed, dense), (    # ... yet more than 2x slower
        f"premise: depthwise {cost_of(timed, depthwise):.3f} ms vs dense {cost_of(timed, dense):.3f} ms")

    by_flops = rewards(flops, [depthwise, dense])
    by_latency = rewards(timed, [depthwise, dense])
    assert by_flops[0] > by_flops[1]        # same accuracy: FLOPs prefer the depthwise net
    assert by_latency[1] > by_latency[0]    # latency prefers the dense one


def _counting(monkeypatch, module, name):
    """Wrap module.name so every call is recorded as (spec hash, device); the real function still runs."""
    real, calls = getattr(module, name), []

    def wrapped(spec, *args, **kwargs):
        calls.append((spec_hash(spec), kwargs.get("device", args[0] if args else None)))
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


def _winner(run_dir):
    return nas.load_spec(run_dir).stages[0].block.kind


def test_search_finds_the_latency_winner_and_the_flops_winner(flip_space, tmp_path, monkeypatch, one_thread):
    measured = _counting(monkeypatch, latency, "latency_report")
    accuracies = []

    def same_accuracy(spec, report=None):
        accuracies.append(0.9)
        return Evaluation(0.9, 0.0)

    # the search alone, both architectures trained (skip_hopeless would skip the second: the same accuracy, costlier)
    common = [f"space={flip_space}", "sampler=random", "trials=6", "final_top_k=0", "skip_hopeless=false"]
    by_latency = run_search([*common, "objective=latency", "latency=measured", "target=1ms",
                             f"out={tmp_path / 'latency'}"],
                            evaluator=same_accuracy, progress=False)
    seen = {r["decisions"]["stage0.block"] for r in by_latency.records}
    assert seen == {"mbconv", "conv"}, "the sampler must propose both options"
    assert _winner(tmp_path / "latency") == "conv"
    assert sorted(device for _, device in measured) == ["cpu", "cpu"]    # each architecture timed once
    assert len({key for key, _ in measured}) == 2
    assert len(accuracies) == 2                                            # and evaluated once

    measured.clear()
    by_flops = run_search([*common, "objective=flops", "target_flops=4M", f"out={tmp_path / 'flops'}"],
                          evaluator=same_accuracy, progress=False)
    assert {r["decisions"]["stage0.block"] for r in by_flops.records} == {"mbconv", "conv"}
    assert _winner(tmp_path / "flops") == "mbconv"
    assert not measured                                                    # FLOPs are counted, not timed


def test_measured_once_per_spec_and_device(flip_space, monkeypatch):
    calls = []

    def fake_latency(spec, device="cpu", **kwargs):
        calls.append((spec_hash(spec), device))
        return {"latency_ms": 2.0 if device == "cpu" else 0.5}

    monkeypatch.setattr(latency, "latency_report", fake_latency)
    depthwise, dense = option(flip_space, "mbconv"), option(flip_space, "conv")
    ctx = context(flip_space, "objective=latency", "latency=measured", "target=1ms")
    for _ in range(3):
        assert cost_of(ctx, depthwise) == cost_of(ctx, dense) == 2.0
    assert sorted(device for _, device in calls) == ["cpu", "cpu"]
    ctx.config = dataclasses.replace(ctx.config, latency_device="cuda")   # same specs, another device
    for _ in range(3):
        assert cost_of(ctx, depthwise) == 0.5
    assert [device for _, device in calls] == ["cpu", "cpu", "cuda"]


@pytest.mark.parametrize("objective, target", [("params", "50k"), ("mac", "200k"), ("flops", "4M")])
def test_analytic_objectives_use_count_cost(objective, target, flip_space, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("an analytic objective must not measure")

    monkeypatch.setattr(latency, "latency_report", never)
    monkeypatch.setattr(energy, "energy_report", never)
    ctx = context(flip_space, f"objective={objective}", f"target={target}")
    for block in ("mbconv", "conv"):
        spec = option(flip_space, block)
        assert cost_of(ctx, spec) == getattr(nas.count_cost(spec), objective)
    assert ctx.config.cost_target() == float(target[:-1]) * {"k": 1e3, "M": 1e6}[target[-1]]


def test_energy_objective_measures_on_the_gpu_once_per_spec(flip_space, monkeypatch):
    calls = []

    def fake_energy(spec, device="cuda", **kwargs):
        calls.append(device)
        return {"energy_j_per_image": 0.01}

    monkeypatch.setattr(energy, "energy_report", fake_energy)
    ctx = context(flip_space, "objective=energy", "target=0.05")   # latency_device stays cpu
    spec = option(flip_space, "conv")
    assert cost_of(ctx, spec) == cost_of(ctx, spec) == 0.01
    assert calls == ["cuda"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_energy_objective_without_a_gpu_is_one_line(flip_space):
    ctx = context(flip_space, "objective=energy", "target=0.05")
    with pytest.raises(nas.UserError, match="energy: not available here") as info:
        cost_of(ctx, option(flip_space, "conv"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("objective, example", [("latency", "20ms"), ("energy", "0.05"), ("params", "3M")])
def test_a_measured_or_counted_objective_needs_a_target(objective, example, tmp_path):
    with pytest.raises(nas.UserError) as info:
        run_search([f"objective={objective}", f"out={tmp_path / 'run'}"], progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith("target:") and example in message
    assert not (tmp_path / "run").exists()
