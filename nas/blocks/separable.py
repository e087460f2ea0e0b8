"""Depthwise-separable conv: MobileNetV1, Xception's separable conv, PP-LCNet's block, MnasNet's SepConv."""

from __future__ import annotations

import torch
from torch import nn

from .. import spec
from .layers import ConvNormAct, DropPath, SqueezeExcite


class Separable(nn.Module):
    """kxk depthwise-norm-act, optional SE, 1x1 pointwise-norm (-act)."""

    def __init__(self, block: spec.Separable, cin: int, drop_path: float = 0.0):
        super().__init__()
        act = block.activation
        self.depthwise = ConvNormAct(cin, cin, block.kernel, block.stride, groups=cin, act=act)
        # PP-LCNet's SE: ReLU inside, hard-sigmoid gate, with h-swish blocks; others use the block's act.
        self.se = (SqueezeExcite(cin, block.se_channels(cin), block.se_activation, block.se_gate)
                   if block.se_ratio > 0 else nn.Identity())
        self.pointwise = ConvNormAct(cin, block.out_channels, 1, act=act if block.pointwise_activation else "none")
        self.residual = block.has_residual(cin)
        self.drop_path = DropPath(drop_path) if self.residual else nn.Identity()

    def zero_init_last(self) -> None:
        if self.residual:
            norm = self.pointwise[1]
            assert isinstance(norm, nn.BatchNorm2d)
            nn.init.zeros_(norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.se(self.depthwise(x)))
        return x + self.drop_path(out) if self.residual else out
