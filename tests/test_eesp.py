"""ESPNetv2's EESP block: the analytic cost equals the built module, shapes chain, bad channels are refused,
and the zoo reproduces the reference code's channel table and FLOP counts."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.blocks.eesp import EESPUnit, StridedEESP
from nas.spec import eesp_dilations, from_dict, resolve


def eesp(out, stride=1, repeats=1, branches=4, limit=7, reinforce=False):
    return {"block": "eesp", "repeats": repeats, "stride": stride, "out_channels": out, "branches": branches,
            "receptive_limit": limit, "input_reinforcement": reinforce}


def small_spec(stages, resolution=48, stem_channels=16, stem=None, divisor=8):
    """A conv stem, the given stages, a pool-linear head. divisor 1 takes every channel count literally."""
    stem = stem or [{"block": "conv", "out_channels": stem_channels, "kernel": 3, "stride": 2, "activation": "prelu"}]
    return from_dict({"name": "eesp-test", "resolution": resolution, "num_classes": 10, "stem": stem,
                      "stages": stages, "head": {"channels": 0, "dropout": 0.2}, "channel_divisor": divisor})


CASES = {
    "unit-residual": (small_spec([eesp(16, limit=7)]), ),
    "unit-widen": (small_spec([eesp(32, limit=5)], resolution=33), ),
    "unit-k2": (small_spec([eesp(16, branches=2, limit=9, repeats=2)], resolution=40), ),
    "unit-k8-r17": (small_spec([eesp(64, branches=8, limit=17, repeats=2)], resolution=64, stem_channels=32), ),
    "strided": (small_spec([eesp(48, stride=2, limit=13)]), ),
    "strided-reinforced": (small_spec([eesp(32, stride=2, limit=11, reinforce=True)], resolution=37), ),
    "strided-reinforced-k3": (small_spec([eesp(42, stride=2, branches=3, limit=9, reinforce=True)],
                                         stem_channels=24, divisor=1), ),
    # a stage of 3: one reinforced down-sampler, then stride-1 repeats that ignore input_reinforcement
    "mini-espnetv2": (small_spec([eesp(32, stride=2, limit=13, reinforce=True),
                                  eesp(64, stride=2, limit=11, reinforce=True, repeats=3),
                                  eesp(128, stride=2, limit=9)], resolution=64), ),
    # a floor-rounding max-pool first: the image's pooling chain misses the feature size (adaptive last step)
    "after-floor-maxpool": (small_spec([eesp(32, stride=2, reinforce=True)], resolution=37, stem=[
        {"block": "conv", "out_channels": 16, "kernel": 3, "stride": 1, "activation": "prelu"},
        {"block": "maxpool", "kernel": 3, "stride": 2}]), ),
}


def measured_flops(model, resolution):
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.randn(1, 3, resolution, resolution))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("case", CASES)
def test_cost_equals_module_and_shapes_chain(case):
    (spec,) = CASES[case]
    model = nas.build_model(spec).eval()
    cost = nas.count_cost(spec)
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert cost.flops == measured_flops(model, spec.resolution)
    r = resolve(spec)
    with torch.inference_mode():
        features = model.features(torch.randn(2, 3, spec.resolution, spec.resolution))
        logits = model(torch.randn(2, 3, spec.resolution, spec.resolution))
    assert features.shape == (2, r.head_in_channels, *r.final_size)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


def test_every_parameter_is_used():
    """Unlike the reference code, the model has no parameters that the forward pass never reaches."""
    (spec,) = CASES["mini-espnetv2"]
    model = nas.build_model(spec).train()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert not unused


def test_modules_by_stride_and_reinforcement():
    (spec,) = CASES["mini-espnetv2"]
    model = nas.build_model(spec)
    eesps = list(model.blocks)[1:]
    assert [type(m).__name__ for m in eesps] == ["StridedEESP", "StridedEESP", "EESPUnit", "EESPUnit", "StridedEESP"]
    assert [m.takes_image for m in eesps] == [True, True, False, False, False]
    assert isinstance(eesps[2], EESPUnit) and eesps[2].residual
    assert isinstance(eesps[4], StridedEESP) and not hasattr(eesps[4], "reinforce")


def test_dilations_follow_the_receptive_limit():
    assert eesp_dilations(4, 13) == [1, 2, 3, 4]
    assert eesp_dilations(4, 7) == [1, 1, 2, 3]   # fields 3, 5, 7, (9 -> 3), sorted
    assert eesp_dilations(4, 5) == [1, 1, 1, 2]
    assert eesp_dilations(4, 3) == [1, 1, 1, 1]


@pytest.mark.parametrize("stages, stem_channels, field", [
    ([eesp(18)], 16, "stages[0].out_channels"),                  # 18 is not a multiple of 4 branches
    ([eesp(24)], 16, "stages[0].out_channels"),                  # branches of 6: not divisible by the 4 groups
    ([eesp(16, stride=2)], 16, "stages[0].out_channels"),        # nothing left for the EESP beside the pooled input
    ([eesp(40, stride=2)], 16, "stages[0].out_channels"),        # 40 - 16 = 24 is not a multiple of 4 * 4
    ([eesp(32)], 18, "stages[0].branches"),                      # the grouped reduce needs 4 | 18 input channels
])
def test_bad_channels_raise_spec_error(stages, stem_channels, field):
    spec = small_spec(stages, stem_channels=stem_channels, divisor=1)
    with pytest.raises(nas.SpecError) as info:
        nas.count_cost(spec)
    assert field in str(info.value)


# -- the zoo against the reference code ------------------------------------------------------------

SCALES = ("0.5", "1.0", "1.25", "1.5", "2.0")


def reference_channels(s: float) -> list[int]:
    """EESPNet.__init__'s channel formula (sacmehta/ESPNetv2 imagenet/Model.py), K = 4, base 32."""
    base, k = 32, 4
    scaled = math.ceil(int(base * s) / k) * k
    levels = [min(base, scaled)] + [scaled * 2 ** i for i in range(1, 5)]
    return levels + [1024 if s <= 1.5 else 1280]


@pytest.mark.parametrize("scale", SCALES)
def test_zoo_channels_follow_the_reference_formula(scale):
    spec = nas.load_spec(f"espnetv2-s{scale}")
    assert spec.width_multiplier == 1.0 and spec.depth_multiplier == 1.0
    r = resolve(spec)
    level_outputs = [rb.block.out_channels for rb in r.blocks if getattr(rb.block, "stride", 1) == 2]
    assert level_outputs + [r.head_in_channels] == reference_channels(float(scale))
    assert [rb.out_size for rb in r.blocks][-1] == (7, 7)


# EdgeNets model/classification/model_zoo/README.md: FLOPs of the reference's Conv2d layers, in millions
REFERENCE_CONV_MFLOPS = {"0.5": 28.38, "1.0": 85.72, "1.25": 123.40, "1.5": 168.60, "2.0": 284.81}


@pytest.mark.parametrize("scale", SCALES)
def test_zoo_conv_flops_match_the_reference_counter(scale):
    spec = nas.load_spec(f"espnetv2-s{scale}")
    classifier = resolve(spec).head_in_channels * spec.num_classes
    assert round((nas.count_cost(spec).flops - classifier) / 1e6, 2) == REFERENCE_CONV_MFLOPS[scale]
