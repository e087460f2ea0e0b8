"""SqueezeNet's Fire module."""

from __future__ import annotations

import torch
from torch import nn

from .. import spec
from .layers import ConvNormAct


class Fire(nn.Module):
    """(3x3 / 2 max-pool when strided), 1x1 squeeze, then 1x1 and 3x3 expands concatenated. No batch norm, biases."""

    def __init__(self, block: spec.Fire, cin: int, drop_path: float = 0.0):
        super().__init__()
        half, act = block.out_channels // 2, block.activation
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True) if block.stride == 2 else nn.Identity()
        self.squeeze = ConvNormAct(cin, block.squeeze_channels, 1, act=act, norm=False, bias=True)
        self.expand1x1 = ConvNormAct(block.squeeze_channels, half, 1, act=act, norm=False, bias=True)
        self.expand3x3 = ConvNormAct(block.squeeze_channels, half, 3, act=act, norm=False, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(self.pool(x))
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], 1)
