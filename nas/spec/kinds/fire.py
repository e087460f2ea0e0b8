"""SqueezeNet's Fire module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import SpecError
from ..geometry import ceil_max_pool_out
from .base import Block, LayerTally


@dataclass(frozen=True)
class Fire(Block):
    """SqueezeNet's Fire module: 1x1 squeeze, then 1x1 and 3x3 expand convs of out/2 each, concatenated.

    stride 2 puts SqueezeNet's 3x3 / 2 max-pool (ceil mode) in front of the block.
    """

    kind: ClassVar[str] = "fire"
    channel_fields: ClassVar[tuple[str, ...]] = ("out_channels", "squeeze_channels")
    out_channels: int = 0
    squeeze_channels: int = 0
    stride: int = 1
    activation: str = "relu"

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        return ceil_max_pool_out(h, w) if self.stride == 2 else (h, w)

    def check(self, where: str, cin: int) -> None:
        if self.out_channels % 2:
            raise SpecError(f"{where}.out_channels", self.out_channels, "an even number (half 1x1, half 3x3)")

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        h, w = self.output_size(h, w)  # the max-pool in front
        s, half, act = self.squeeze_channels, self.out_channels // 2, self.activation
        t.conv(cin, s, 1, h, w, bias=True, norm=False, activation=act)
        t.conv(s, half, 1, h, w, bias=True, norm=False, activation=act)
        t.conv(s, half, 3, h, w, bias=True, norm=False, activation=act)
