"""MBConv, the inverted residual of MobileNetV2, MnasNet and EfficientNet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Block, LayerTally


def se_channels(in_channels: int, se_ratio: float) -> int:
    """Squeeze width: relative to the block's *input* channels (EfficientNet / MnasNet)."""
    return max(1, int(in_channels * se_ratio))


@dataclass(frozen=True)
class MBConv(Block):
    """Inverted residual (MobileNetV2 / MnasNet / EfficientNet): 1x1 expand, kxk depthwise, SE, 1x1 project.

    ``se_ratio`` is relative to the block's *input* channels: squeeze width = max(1, int(in * se_ratio)).
    The identity skip (with drop-path) is used when ``skip`` and stride 1 and in == out channels.
    """

    kind: ClassVar[str] = "mbconv"
    out_channels: int = 0
    kernel: int = 3
    stride: int = 1
    expansion: float = 6.0  # expanded channels = in * expansion; 1 means no expand conv
    se_ratio: float = 0.0
    activation: str = "swish"
    skip: bool = True

    def mid_channels(self, cin: int) -> int:
        """Channels after the expand conv; equal to ``cin`` means there is no expand conv."""
        return int(round(cin * self.expansion))

    def se_channels(self, cin: int) -> int:
        return se_channels(cin, self.se_ratio)

    def has_residual(self, cin: int) -> bool:
        return self.skip and self.stride == 1 and cin == self.out_channels

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        mid = self.mid_channels(cin)
        if mid != cin:
            t.conv(cin, mid, 1, h, w, activation=self.activation)
        h, w = t.conv(mid, mid, self.kernel, h, w, self.stride, groups=mid, activation=self.activation)
        if self.se_ratio > 0:
            t.squeeze_excite(mid, self.se_channels(cin), self.activation)
        t.conv(mid, self.out_channels, 1, h, w)
