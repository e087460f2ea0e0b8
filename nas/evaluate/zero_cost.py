"""Zero-cost accuracy proxies: a score of an untrained network from one minibatch, higher = predicted better.

    score("naswot", spec, batch_x, batch_y, seed=0) -> float

Each torch proxy builds the spec afresh under ``seed`` (torch's global random state is restored after),
so a score is a function of (proxy, spec, batch, seed) alone. The proxies follow the reference code of
Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS" (SamsungLabs/zero-cost-nas), and of
Mellor et al. 2021 (BayesWatch/nas-without-training) for naswot:

- ``synflow`` (Tanaka et al. 2020): replace every parameter by its absolute value, feed one all-ones
  image, backpropagate the sum of the outputs; the score is sum |w * dR/dw| over conv and linear
  weights. In float64 to avoid overflow, and with batch norm as an identity: the reference builds the
  net without batch norm; we keep it in eval mode, where at initialisation (running mean 0, variance 1,
  scale 1, shift 0) it divides by sqrt(1 + eps) and nothing else. A batch-norm in training mode on a
  constant input would zero the signal. Deviation: the rectifier-like activations (see naswot) are
  replaced by the identity. With positive weights and inputs a ReLU is the identity anyway, which is
  the linearised network synflow is defined on, so ReLU networks score exactly as in the reference;
  but ReLU6 saturates at 6 and zeroes the gradient through every saturated unit: at 32 px,
  MobileNetV2 scores 1.2e5 with its ReLU6s kept and 1.2e26 linearised, next to MnasNet-A1's 6.4e24
  (ReLU, the same either way). Sigmoid gates are kept.
- ``naswot`` (Mellor et al. 2021, v2): at every rectifier-like activation, each image's binary code
  (pre-activation > 0 per unit); kernel K[i, j] = number of units where images i and j agree, summed
  over activations; the score is log|det K|. The paper hooks ReLUs only; we also hook ReLU6, SiLU
  (swish), Hardswish and PReLU, taking the sign of the activation's *input*: the on/off pattern for
  the first four (positive exactly where the input is), the side of the kink for PReLU. Sigmoid
  gates are not rectifiers and are skipped. Batch norm uses batch statistics (train mode), as in the
  reference.
- ``grad_norm``: sum over conv and linear layers of the L2 norm of the weight gradient of the
  cross-entropy loss on the batch (train-mode batch norm, as in the reference).
- ``params`` and ``flops``: the baselines of the zero-cost paper, from nas.count_cost (FLOPs are
  multiply-adds at the spec's resolution); no model is built.

Dropout and drop-path are switched off for every proxy: a proxy scores the architecture, not one
random mask. The proxies were validated on NAS-Bench cell spaces; on a new search space check their
rank correlation with trained accuracy before trusting them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.layers import DropPath
from ..build import build_model
from ..cost import count_cost
from ..errors import UserError
from ..settings import ZERO_COST_PROXIES
from ..spec import Spec
from .latency import torch_device

# ZERO_COST_PROXIES is declared torch-free in nas.settings; a test checks each is scored here.
# Rectifier-like activations: naswot reads the sign of their input, synflow replaces them by the identity.
RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.PReLU)


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _no_stochastic_layers(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.Dropout, DropPath)):
            m.eval()
    return model


def _linearize_rectifiers(model: nn.Module) -> nn.Module:
    """Replace every rectifier-like activation by the identity, in place (the model is a fresh copy)."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, RECTIFIERS):
                setattr(parent, name, nn.Identity())
    return model


def synflow(model: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor) -> float:
    model = _linearize_rectifiers(model.double().eval())
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    ones = torch.ones((1,) + tuple(batch_x.shape[1:]), dtype=torch.float64, device=batch_x.device)
    model(ones).sum().backward()
    total = sum((m.weight * m.weight.grad).abs().sum().item()
                for m in _weighted_layers(model) if m.weight.grad is not None)
    return float(total)


def naswot(model: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor) -> float:
    model = _no_stochastic_layers(model.train())
    n = batch_x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=batch_x.device)

    def add_codes(module: nn.Module, inputs: tuple) -> None:
        # A pre-hook sees the input before an in-place activation overwrites it. float32 counts are
        # exact here: every partial sum is an integer below 2**24 for any layer of fewer than 16M units.
        codes = (inputs[0] > 0).flatten(1).float()
        agree = codes @ codes.T + (1 - codes) @ (1 - codes).T
        kernel.add_(agree.double())

    hooks = [m.register_forward_pre_hook(add_codes) for m in model.modules() if isinstance(m, RECTIFIERS)]
    try:
        with torch.no_grad():
            model(batch_x)
    finally:
        for hook in hooks:
            hook.remove()
    if not hooks:
        return -math.inf  # no rectifiers: every image has the same (empty) code
    return float(torch.linalg.slogdet(kernel).logabsdet)


def grad_norm(model: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor) -> float:
    model = _no_stochastic_layers(model.train())
    F.cross_entropy(model(batch_x), batch_y).backward()
    return float(sum(m.weight.grad.norm().item() for m in _weighted_layers(model) if m.weight.grad is not None))


TORCH_PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "synflow": synflow, "naswot": naswot, "grad_norm": grad_norm,
}


def _check_batch(spec: Spec, batch_x, batch_y, proxy: str) -> None:
    if not isinstance(batch_x, torch.Tensor) or batch_x.ndim != 4 or batch_x.shape[1] != spec.in_channels:
        shape = tuple(batch_x.shape) if isinstance(batch_x, torch.Tensor) else type(batch_x).__name__
        raise UserError(f"{proxy} batch_x: got {shape}; allowed: a tensor of shape (N, {spec.in_channels}, H, W)")
    n = batch_x.shape[0]
    if proxy != "synflow" and n < 2:  # naswot compares images; train-mode batch norm needs two
        raise UserError(f"{proxy} batch_x: got a batch of {n}; allowed: 2 or more images")
    if proxy == "grad_norm":
        if not isinstance(batch_y, torch.Tensor) or tuple(batch_y.shape) != (n,):
            shape = tuple(batch_y.shape) if isinstance(batch_y, torch.Tensor) else type(batch_y).__name__
            raise UserError(f"grad_norm batch_y: got {shape}; allowed: a tensor of {n} class indices")
        if n and (int(batch_y.min()) < 0 or int(batch_y.max()) >= spec.num_classes):
            raise UserError(f"grad_norm batch_y: got labels from {int(batch_y.min())} to {int(batch_y.max())}; "
                            f"allowed: 0 to {spec.num_classes - 1} (the spec's num_classes)")


def score(proxy_name: str, spec: Spec, batch_x: torch.Tensor | None = None, batch_y: torch.Tensor | None = None,
          seed: int = 0, device: str = "cpu") -> float:
    """The ``proxy_name`` score of ``spec`` at initialisation (seeded by ``seed``) on one minibatch.

    ``batch_x``: float images (N, C, H, W); ``batch_y``: class indices (N,), used by grad_norm only.
    ``params`` and ``flops`` need no batch; synflow uses only the batch's image shape. Higher scores
    predict higher trained accuracy (naswot is -inf when two images switch the same units on).
    """
    if proxy_name not in ZERO_COST_PROXIES:
        raise UserError(f"zero-cost proxy: got {proxy_name!r}; allowed: {', '.join(ZERO_COST_PROXIES)}")
    if proxy_name == "params":
        return float(count_cost(spec).params)
    if proxy_name == "flops":
        return float(count_cost(spec).flops)
    _check_batch(spec, batch_x, batch_y, proxy_name)
    target = torch_device(device, "zero-cost device")
    # fork_rng: seed the build without disturbing the caller's random stream.
    with torch.random.fork_rng(devices=[target.index] if target.type == "cuda" else []):
        torch.manual_seed(seed)
        model = build_model(spec).to(target)
        x = batch_x.to(target, torch.float32)
        y = batch_y.to(target, torch.long) if batch_y is not None else None
        return TORCH_PROXIES[proxy_name](model, x, y)


__all__ = ["RECTIFIERS", "grad_norm", "naswot", "score", "synflow"]
