"""Depthwise-separable conv: MobileNetV1, Xception's separable conv, PP-LCNet's block, MnasNet's SepConv."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Block, LayerTally
from .mbconv import se_channels


@dataclass(frozen=True)
class Separable(Block):
    """Depthwise-separable conv (MobileNetV1 / Xception / PP-LCNet / MnasNet's SepConv): kxk depthwise, SE, 1x1.

    ``se_ratio`` is relative to the block's input channels. ``pointwise_activation`` False gives the
    linear bottleneck of MnasNet / EfficientNet's first block.
    """

    kind: ClassVar[str] = "separable"
    out_channels: int = 0
    kernel: int = 3
    stride: int = 1
    se_ratio: float = 0.0
    activation: str = "relu"
    pointwise_activation: bool = True
    skip: bool = False  # identity when stride 1 and in == out channels

    def se_channels(self, cin: int) -> int:
        return se_channels(cin, self.se_ratio)

    @property
    def se_activation(self) -> str:
        """PP-LCNet's SE (h-swish blocks) has ReLU inside; otherwise the block's activation."""
        return "relu" if self.activation == "hswish" else self.activation

    @property
    def se_gate(self) -> str:
        """PP-LCNet's SE gates with a hard sigmoid; MnasNet-style blocks with a sigmoid."""
        return "hsigmoid" if self.activation == "hswish" else "sigmoid"

    def has_residual(self, cin: int) -> bool:
        return self.skip and self.stride == 1 and cin == self.out_channels

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        h, w = t.conv(cin, cin, self.kernel, h, w, self.stride, groups=cin, activation=self.activation)
        if self.se_ratio > 0:
            t.squeeze_excite(cin, self.se_channels(cin), self.se_activation)
        t.conv(cin, self.out_channels, 1, h, w, activation=self.activation if self.pointwise_activation else "none")
