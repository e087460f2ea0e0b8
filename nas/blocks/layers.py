"""Small layers every block uses: activations, conv-norm-activation, squeeze-excitation, drop-path."""

from __future__ import annotations

import torch
from torch import nn


def activation(name: str, channels: int) -> nn.Module:
    """An activation by its spec name. PReLU learns one slope per channel (ESPNetv2)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


class ConvNormAct(nn.Sequential):
    """Conv2d, then batch norm (optional), then an activation. Padding defaults to 'same' for odd kernels."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str = "none", norm: bool = True, bias: bool = False, dilation: int = 1,
                 padding: int | None = None):
        pad = dilation * (kernel - 1) // 2 if padding is None else padding
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, pad, dilation, groups, bias=bias)]
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        if act != "none":
            layers.append(activation(act, cout))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, 1x1 to ``squeezed`` channels, act, 1x1 back, sigmoid gate.

    The caller computes ``squeezed`` from the block's *input* channels (see nas.spec.se_channels).
    ``gate`` is 'sigmoid' (EfficientNet, MnasNet) or 'hsigmoid' (PP-LCNet's hard sigmoid).
    """

    def __init__(self, channels: int, squeezed: int, act: str = "relu", gate: str = "sigmoid"):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1, bias=True)
        self.act = activation(act, squeezed)
        self.expand = nn.Conv2d(squeezed, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid() if gate == "hsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(scale))))


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: drop the whole branch per sample while training."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep
