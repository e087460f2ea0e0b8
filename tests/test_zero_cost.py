"""Zero-cost proxies: deterministic for a seed, finite on a small spec, different for different specs."""

import math

import pytest
import torch

import nas
from nas.evaluate.zero_cost import score
from nas.settings import ZERO_COST_PROXIES
from nas.spec import from_dict


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 32, 32, generator=generator), torch.randint(0, 10, (8,), generator=generator)


@pytest.fixture
def tiny(tiny_spec_dict):
    return from_dict(tiny_spec_dict)


@pytest.fixture
def other(tiny_spec_dict):
    """Clearly different from tiny: ReLU, deeper and wider, no squeeze-excitation."""
    return from_dict({
        "name": "other", "resolution": 32, "num_classes": 10,
        "stem": [{"block": "conv", "out_channels": 24, "kernel": 3, "stride": 1, "activation": "relu"}],
        "stages": [
            {"block": "mbconv", "repeats": 3, "kernel": 5, "stride": 2, "expansion": 4, "out_channels": 32,
             "activation": "relu"},
            {"block": "separable", "repeats": 2, "kernel": 3, "stride": 2, "out_channels": 48, "activation": "relu6"},
        ],
        "head": {"channels": 96, "activation": "relu"},
    })


@pytest.mark.parametrize("proxy", ZERO_COST_PROXIES)
def test_deterministic_finite_and_discriminating(proxy, tiny, other, batch):
    x, y = batch
    first = score(proxy, tiny, x, y, seed=3)
    assert math.isfinite(first)
    assert score(proxy, tiny, x, y, seed=3) == first
    assert score(proxy, other, x, y, seed=3) != pytest.approx(first, rel=1e-3)


def test_seed_changes_the_initialisation(tiny, batch):
    x, y = batch
    assert score("grad_norm", tiny, x, y, seed=0) != score("grad_norm", tiny, x, y, seed=1)


def test_caller_random_state_is_untouched(tiny, batch):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    score("naswot", tiny, *batch, seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_params_and_flops_need_no_batch(tiny):
    cost = nas.count_cost(tiny)
    assert score("params", tiny) == cost.params
    assert score("flops", tiny) == cost.flops


def test_unknown_proxy_lists_the_allowed_names(tiny, batch):
    with pytest.raises(nas.UserError, match="allowed: synflow, naswot, grad_norm, params, flops"):
        score("jacov", tiny, *batch)


def test_bad_batches_are_user_errors(tiny, batch):
    x, y = batch
    with pytest.raises(nas.UserError, match=r"\(N, 3, H, W\)"):
        score("synflow", tiny, x[:, :1], y)
    with pytest.raises(nas.UserError, match="2 or more"):
        score("naswot", tiny, x[:1], y[:1])
    with pytest.raises(nas.UserError, match="num_classes"):
        score("grad_norm", tiny, x, y + 10)
