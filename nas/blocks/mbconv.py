"""MBConv, the inverted residual of MobileNetV2, MnasNet and EfficientNet."""

from __future__ import annotations

import torch
from torch import nn

from .. import spec
from .layers import ConvNormAct, DropPath, SqueezeExcite


class MBConv(nn.Module):
    """1x1 expand (skipped when expansion gives no new channels), kxk depthwise, SE, linear 1x1 project."""

    def __init__(self, block: spec.MBConv, cin: int, drop_path: float = 0.0):
        super().__init__()
        mid = block.mid_channels(cin)
        act = block.activation
        self.expand = ConvNormAct(cin, mid, 1, act=act) if mid != cin else nn.Identity()
        self.depthwise = ConvNormAct(mid, mid, block.kernel, block.stride, groups=mid, act=act)
        # SE squeezes relative to the block input (EfficientNet); its inner activation is the block's.
        self.se = SqueezeExcite(mid, block.se_channels(cin), act) if block.se_ratio > 0 else nn.Identity()
        self.project = ConvNormAct(mid, block.out_channels, 1)
        self.residual = block.has_residual(cin)
        self.drop_path = DropPath(drop_path) if self.residual else nn.Identity()

    def zero_init_last(self) -> None:
        if self.residual:
            norm = self.project[1]
            assert isinstance(norm, nn.BatchNorm2d)
            nn.init.zeros_(norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + self.drop_path(out) if self.residual else out
