"""Plain layers as blocks: a conv-norm-act layer and max pooling (stems, VGG-style layers)."""

from __future__ import annotations

from torch import nn

from .. import spec
from .layers import ConvNormAct


def conv_block(block: spec.Conv, cin: int, drop_path: float = 0.0) -> nn.Module:
    return ConvNormAct(cin, block.out_channels, block.kernel, block.stride, block.conv_groups(cin), block.activation,
                       block.batch_norm, block.bias, padding=block.padding)


def maxpool_block(block: spec.MaxPool, cin: int, drop_path: float = 0.0) -> nn.Module:
    return nn.MaxPool2d(block.kernel, block.stride, block.padding, ceil_mode=block.ceil_mode)
