"""Plain layers: a conv-norm-act layer and max pooling (stems, VGG-style layers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import SpecError
from ..geometry import conv_out
from .base import Block, LayerTally


@dataclass(frozen=True)
class Conv(Block):
    """Convolution, optional batch norm, activation (a stem layer, a plain VGG-style layer)."""

    kind: ClassVar[str] = "conv"
    out_channels: int = 0
    kernel: int = 3
    stride: int = 1
    groups: int = 1          # channel groups; see depthwise
    depthwise: bool = False  # groups = channels (requires out_channels == input channels)
    activation: str = "relu"
    batch_norm: bool = True
    bias: bool = False
    padding: int | None = None  # None: (kernel - 1) // 2, the "same" padding of odd kernels

    def conv_groups(self, cin: int) -> int:
        return cin if self.depthwise else self.groups

    def conv_padding(self) -> int:
        return (self.kernel - 1) // 2 if self.padding is None else self.padding

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        pad = self.conv_padding()
        return conv_out(h, self.kernel, self.stride, pad), conv_out(w, self.kernel, self.stride, pad)

    def check(self, where: str, cin: int) -> None:
        cout, groups = self.out_channels, self.conv_groups(cin)
        if self.depthwise and cout != cin:
            raise SpecError(f"{where}.out_channels", cout, f"{cin} (a depthwise conv keeps its {cin} input channels)")
        if cin % groups or cout % groups:
            raise SpecError(f"{where}.groups", groups, f"a divisor of both {cin} input and {cout} output channels")

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        t.conv(cin, self.out_channels, self.kernel, h, w, self.stride, self.conv_groups(cin), self.bias,
               self.batch_norm, self.activation, padding=self.padding)


@dataclass(frozen=True)
class MaxPool(Block):
    """Max pooling (a stem's down-sampling in ShuffleNet and SqueezeNet)."""

    kind: ClassVar[str] = "maxpool"
    channel_fields: ClassVar[tuple[str, ...]] = ()
    scales_with_depth: ClassVar[bool] = False
    kernel: int = 3
    stride: int = 2
    padding: int = 0
    ceil_mode: bool = False

    def output_channels(self, cin: int) -> int:
        return cin

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        return (conv_out(h, self.kernel, self.stride, self.padding, 1, self.ceil_mode),
                conv_out(w, self.kernel, self.stride, self.padding, 1, self.ceil_mode))

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        """No weights; pooling is not counted (see nas/cost.py)."""
