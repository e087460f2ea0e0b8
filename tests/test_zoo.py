"""Every zoo architecture builds, runs, and costs exactly what its built module costs and what its paper says."""

import re

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.zoo import published

NAMES = nas.zoo_names()
# Counting FLOPs on the built model is slow at the big resolutions; these are counted at a smaller side
# (the analytic count is checked at the same side, so the comparison is exact either way).
SMALL_SIDE = 96


def _measured_flops(model, side):
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.randn(1, 3, side, side))
    return counter.get_total_flops() // 2


def _tolerance(written) -> tuple[float, float]:
    """'3.9M' -> (3.9e6, 0.05e6): a number holds to its last written digit; a plain int is exact."""
    if isinstance(written, int):
        return float(written), 0.0
    match = re.fullmatch(r"([0-9]*\.?([0-9]*))([kMG]?)", str(written))
    assert match, f"bad published number {written!r}"
    scale = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[match.group(3)]
    digits = len(match.group(2))
    return float(match.group(1)) * scale, 0.5 * 10 ** -digits * scale


def test_zoo_has_every_family():
    expected = ([f"efficientnet-b{i}" for i in range(8)]
                + ["mnasnet-a1", "mnasnet-b1", "mobilenetv1-1.0", "mobilenetv2-1.0"]
                + [f"lcnet-x{s}" for s in ("0.25", "0.35", "0.5", "0.75", "1.0", "1.5", "2.0", "2.5")]
                + [f"espnetv2-s{s}" for s in ("0.5", "1.0", "1.25", "1.5", "2.0")]
                + ["vovnet-19-slim-dw-ese", "vovnet-27-slim", "vovnet-39", "vovnet-57", "shufflenetv2-x1.0",
                   "squeezenet-1.1"])
    missing = sorted(set(expected) - set(NAMES))
    assert not missing, f"zoo lacks {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_cost_equals_built_model(name):
    spec = nas.load_spec(name)
    model = nas.build_model(spec).eval()
    assert nas.count_cost(spec).params == sum(p.numel() for p in model.parameters())
    side = min(spec.resolution, SMALL_SIDE)
    assert nas.count_cost(spec, resolution=side).flops == _measured_flops(model, side)


@pytest.mark.parametrize("name", NAMES)
def test_published_counts(name):
    facts = published(name)
    assert facts, f"{name} has no published counts in its zoo file"
    cost = nas.count_cost(nas.load_spec(name))
    value, tol = _tolerance(facts["params"])
    assert abs(cost.params - value) <= tol, f"params {cost.params:,} vs published {facts['params']}"
    value, tol = _tolerance(facts["flops"])
    tol = max(tol, facts.get("flops_tolerance", 0.0) * value)
    assert abs(cost.flops - value) <= tol, f"FLOPs {cost.flops:,} vs published {facts['flops']}"


@pytest.mark.parametrize("name", NAMES)
def test_forward_at_small_resolution(name):
    spec = nas.load_spec(name)
    model = nas.build_model(spec).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()
