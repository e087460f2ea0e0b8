"""The OSA block (VoVNet / VoVNetV2): the analytic cost equals the built module, shapes follow the spec."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas import spec as spec_mod
from nas.blocks.osa import OSA


def _vovnet_like(resolution: int, **osa) -> spec_mod.Spec:
    """A small VoVNet: conv stem, an OSA stage, a down-sampling OSA stage, a repeated stage with the options."""
    first = {"block": "osa", "stage_channels": 16, "out_channels": 32, "layers": 3}
    options = {k: v for k, v in osa.items() if k != "skip"}
    stages = [
        {**first, **options},
        {"block": "osa", "repeats": 1, "stride": 2, "stage_channels": 24, "out_channels": 48, "layers": 2, **options},
        # skip needs in == out channels, so it goes on a stage whose input already has 48 channels
        {"block": "osa", "repeats": 2, "stride": 1, "stage_channels": 24, "out_channels": 48, "layers": 2, **osa},
    ]
    return spec_mod.from_dict({
        "name": "osa-test", "resolution": resolution, "num_classes": 10,
        "stem": [{"block": "conv", "out_channels": 16, "stride": 2}],
        "stages": stages,
        "head": {"kind": "conv_pool_linear", "channels": 0},
    })


CASES = [
    (32, {}),
    (33, {"skip": True}),                                      # odd side: the ceil-mode pool keeps the edge
    (40, {"ese": True}),
    (48, {"depthwise": True}),                                 # 16 -> 16 without reduction, 32 -> 24 with
    (63, {"depthwise": True, "ese": True, "skip": True}),
    (64, {"kernel": 5, "skip": True, "ese": True}),
    (37, {"kernel": 5, "depthwise": True, "activation": "hswish"}),
]


@pytest.mark.parametrize("resolution, options", CASES)
def test_cost_equals_built_model(resolution, options):
    spec = _vovnet_like(resolution, **options)
    model = nas.build_model(spec).eval()
    cost = nas.count_cost(spec)
    assert cost.params == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        out = model(torch.randn(1, 3, resolution, resolution))
    assert cost.flops == counter.get_total_flops() // 2
    assert out.shape == (1, 10)


@pytest.mark.parametrize("resolution, options", CASES)
def test_blocks_keep_the_resolved_shapes(resolution, options):
    spec = _vovnet_like(resolution, **options)
    model = nas.build_model(spec).eval()
    resolved = spec_mod.resolve(spec)
    x = torch.randn(2, 3, resolution, resolution)
    with torch.inference_mode():
        for rb, block in zip(resolved.blocks, model.blocks):
            x = block(x)
            assert tuple(x.shape) == (2, rb.block.output_channels(rb.in_channels)) + rb.out_size


def test_skip_adds_the_pooled_input():
    """With the aggregation's batch-norm scale and shift zeroed, an OSA with skip is the identity."""
    block = spec_mod.OSA(out_channels=16, stage_channels=8, layers=2, stride=2, skip=True)
    module = OSA(block, 16).eval()
    torch.nn.init.zeros_(module.aggregate[1].weight)
    torch.nn.init.zeros_(module.aggregate[1].bias)
    x = torch.randn(1, 16, 9, 9)
    with torch.inference_mode():
        assert torch.equal(module(x), torch.nn.functional.max_pool2d(x, 3, 2, ceil_mode=True))


def test_depthwise_reduces_only_a_mismatched_input():
    block = spec_mod.OSA(out_channels=32, stage_channels=16, layers=2, depthwise=True)
    assert isinstance(OSA(block, 16).reduce, torch.nn.Identity)
    assert not isinstance(OSA(block, 24).reduce, torch.nn.Identity)
