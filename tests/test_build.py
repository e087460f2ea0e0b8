"""Built models behave like any PyTorch model: they train, trace and export."""

import pytest
import torch

import nas
from nas.spec import from_dict, resolve


@pytest.mark.parametrize("name", ["efficientnet-b0", "espnetv2-s0.5", "vovnet-19-slim-dw-ese", "shufflenetv2-x1.0"])
def test_export(name):
    model = nas.build_model(nas.load_spec(name)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)
    exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), expected, atol=1e-5)


def test_a_few_steps_reduce_the_loss(tiny_spec_dict):
    torch.manual_seed(0)
    model = nas.build_model(from_dict(tiny_spec_dict))
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7


def test_drop_path_grows_linearly_over_residual_blocks():
    rates = [rb.drop_path for rb in resolve(nas.load_spec("efficientnet-b0")).blocks if rb.drop_path > 0]
    assert rates == sorted(rates) and rates[-1] < 0.2


def test_residual_blocks_start_as_identity(tiny_spec_dict):
    """zero_init_last: the last batch norm of each residual block starts at zero scale."""
    model = nas.build_model(from_dict(tiny_spec_dict))
    residual = [m for m in model.modules() if getattr(m, "residual", False)]
    assert residual and all(m.project[1].weight.abs().sum() == 0 for m in residual if hasattr(m, "project"))


def test_batch_norm_eps_and_momentum_reach_every_batch_norm(tiny_spec_dict):
    def norms(spec_dict):
        model = nas.build_model(from_dict(spec_dict))
        return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    defaults = norms(tiny_spec_dict)
    assert defaults and all(m.eps == 1e-5 and m.momentum == 0.1 for m in defaults)
    tuned = norms({**tiny_spec_dict, "batch_norm_eps": 1e-3, "batch_norm_momentum": 0.01})
    assert len(tuned) == len(defaults)
    assert all(m.eps == 1e-3 and m.momentum == 0.01 for m in tuned)
