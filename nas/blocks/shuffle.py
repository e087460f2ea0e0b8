"""ShuffleNetV2 unit: channel split, a depthwise branch, concatenation and channel shuffle."""

from __future__ import annotations

import torch
from torch import nn

from .. import spec
from .layers import ConvNormAct


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Shuffle(nn.Module):
    def __init__(self, block: spec.Shuffle, cin: int, drop_path: float = 0.0):
        super().__init__()
        half, k, s, act = block.out_channels // 2, block.kernel, block.stride, block.activation
        self.stride = s
        self.branch1: nn.Module
        if s == 2:  # both halves see the whole input; branch 1 is a depthwise down-sampling + 1x1
            self.branch1 = nn.Sequential(ConvNormAct(cin, cin, k, 2, groups=cin), ConvNormAct(cin, half, 1, act=act))
            branch_in = cin
        else:
            self.branch1 = nn.Identity()
            branch_in = half
        self.branch2 = nn.Sequential(ConvNormAct(branch_in, half, 1, act=act),
                                     ConvNormAct(half, half, k, s, groups=half),
                                     ConvNormAct(half, half, 1, act=act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            keep, work = x.chunk(2, dim=1)
            out = torch.cat([keep, self.branch2(work)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out, 2)
