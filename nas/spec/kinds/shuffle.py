"""ShuffleNetV2's unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import SpecError
from .base import Block, LayerTally


@dataclass(frozen=True)
class Shuffle(Block):
    """ShuffleNetV2 unit. stride 1: split channels in half, transform one half (1x1, kxk depthwise, 1x1),
    concatenate, shuffle. stride 2: both halves see the whole input and both down-sample."""

    kind: ClassVar[str] = "shuffle"
    out_channels: int = 0
    kernel: int = 3
    stride: int = 1
    activation: str = "relu"

    def check(self, where: str, cin: int) -> None:
        cout = self.out_channels
        if cout % 2:
            raise SpecError(f"{where}.out_channels", cout, "an even number (two halves)")
        if self.stride == 1 and cin != cout:
            raise SpecError(f"{where}.out_channels", cout, f"{cin}: a stride-1 shuffle unit keeps its channels")

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        half, act = self.out_channels // 2, self.activation
        if self.stride == 2:  # branch 1: depthwise down-sampling, 1x1
            oh, ow = t.conv(cin, cin, self.kernel, h, w, 2, groups=cin)
            t.conv(cin, half, 1, oh, ow, activation=act)
            branch_in = cin
        else:
            branch_in = half
        t.conv(branch_in, half, 1, h, w, activation=act)  # branch 2: 1x1, depthwise, 1x1
        oh, ow = t.conv(half, half, self.kernel, h, w, self.stride, groups=half)
        t.conv(half, half, 1, oh, ow, activation=act)
