"""VoVNet's One-Shot Aggregation block (Lee et al. 2019) with VoVNetV2's additions (Lee & Park, CenterMask 2020).

An OSA block runs ``layers`` convolutions one after another and concatenates the block input with
*every* layer's output once, at the end, where a 1x1 conv aggregates them. Unlike DenseNet's dense
block, no layer sees the growing concatenation, which keeps memory traffic (MAC) low.

Reference code followed: stadiumai/VoVNet.pytorch (V1) and youngwanLEE/vovnet-detectron2 (V2: eSE,
identity, depthwise); timm's ``vovnet.py`` builds the same layers.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import spec
from .layers import ConvNormAct, DropPath


class EffectiveSqueezeExcite(nn.Module):
    """eSE (VoVNetV2): global pool, one 1x1 conv with bias keeping the channels, hard-sigmoid gate.

    SE's two convs squeeze the channels and so lose information; eSE keeps them with a single conv.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()  # relu6(x + 3) / 6, VoVNetV2's Hsigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc(x.mean((2, 3), keepdim=True)))


def _depthwise_layer(channels: int, kernel: int, act: str) -> nn.Sequential:
    """VoVNetV2's dw_conv3x3: a depthwise kxk conv with no norm or activation, then 1x1-BN-act."""
    return nn.Sequential(
        ConvNormAct(channels, channels, kernel, groups=channels, norm=False),
        ConvNormAct(channels, channels, 1, act=act),
    )


class OSA(nn.Module):
    """[max-pool 3x3/2] -> [1x1 reduce] -> layers x (kxk conv-BN-act) -> concat(input, every layer) -> 1x1
    -> [eSE] -> [+input].

    - stride 2: VoVNet down-samples with a 3x3 / 2 max-pool (ceil mode) at the start of a stage, not
      with a strided conv; everything after it, the identity included, sees the pooled map.
    - depthwise (VoVNet-slim-dw): the layers keep ``stage_channels``, so an input of other width is first
      reduced by a 1x1-BN-act. The concatenation still takes the unreduced block input.
    - skip (VoVNetV2): adds the block input to the output; the spec requires in == out channels.
    """

    def __init__(self, block: spec.OSA, cin: int, drop_path: float = 0.0):
        super().__init__()
        act, width = block.activation, block.stage_channels
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True) if block.stride == 2 else nn.Identity()
        self.reduce = ConvNormAct(cin, width, 1, act=act) if block.needs_reduce(cin) else nn.Identity()
        layers = []
        channels = width if block.depthwise else cin
        for _ in range(block.layers):
            if block.depthwise:
                layers.append(_depthwise_layer(width, block.kernel, act))
            else:
                layers.append(ConvNormAct(channels, width, block.kernel, act=act))
            channels = width
        self.layers = nn.ModuleList(layers)
        self.aggregate = ConvNormAct(cin + block.layers * width, block.out_channels, 1, act=act)
        self.ese = EffectiveSqueezeExcite(block.out_channels) if block.ese else nn.Identity()
        self.residual = block.has_residual(cin)
        self.drop_path = DropPath(drop_path) if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        features = [x]
        y = self.reduce(x)
        for layer in self.layers:
            y = layer(y)
            features.append(y)
        out = self.ese(self.aggregate(torch.cat(features, dim=1)))
        return x + self.drop_path(out) if self.residual else out
