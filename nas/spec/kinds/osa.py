"""VoVNet's One-Shot Aggregation block with VoVNetV2's additions (eSE, identity, depthwise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import SpecError
from ..geometry import ceil_max_pool_out
from .base import Block, LayerTally


@dataclass(frozen=True)
class OSA(Block):
    """One-Shot Aggregation (VoVNet): ``layers`` sequential kxk conv-BN-act layers of ``stage_channels``;
    the block input and every layer's output are concatenated once and aggregated by a 1x1 conv-BN-act
    to ``out_channels``.

    stride 2 puts VoVNet's 3x3 / 2 max-pool (ceil mode) in front of the block. ``ese`` adds VoVNetV2's
    effective squeeze-excitation after the aggregation (one 1x1 conv with bias on the pooled map,
    hard-sigmoid gate). ``depthwise`` (VoVNetV2's slim-dw) makes each layer a depthwise kxk conv without
    norm or activation followed by a 1x1 conv-BN-act, and, when the input width differs from
    ``stage_channels``, reduces the input once with a 1x1 conv-BN-act before the first layer (the
    concatenation still takes the unreduced input). ``skip`` adds VoVNetV2's identity (input + output;
    requires in == out channels).
    """

    kind: ClassVar[str] = "osa"
    channel_fields: ClassVar[tuple[str, ...]] = ("out_channels", "stage_channels")
    out_channels: int = 0
    stage_channels: int = 0
    layers: int = 5
    kernel: int = 3
    stride: int = 1
    ese: bool = False
    depthwise: bool = False
    skip: bool = False
    activation: str = "relu"

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        return ceil_max_pool_out(h, w) if self.stride == 2 else (h, w)

    def has_residual(self, cin: int) -> bool:
        return self.skip  # VoVNetV2's identity, added after the pool at any stride

    def needs_reduce(self, cin: int) -> bool:
        """slim-dw: one 1x1 reduction so the depthwise layers keep ``stage_channels``."""
        return self.depthwise and cin != self.stage_channels

    def check(self, where: str, cin: int) -> None:
        if self.skip and cin != self.out_channels:
            raise SpecError(f"{where}.skip", True, f"false, or out_channels equal to the {cin} input channels")

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        h, w = self.output_size(h, w)  # the max-pool in front: no weights, but every layer sees its output
        channels = cin
        if self.needs_reduce(cin):
            t.conv(cin, self.stage_channels, 1, h, w, activation=self.activation)
            channels = self.stage_channels
        for _ in range(self.layers):
            if self.depthwise:  # VoVNetV2 dw_conv3x3: depthwise kxk without norm, then 1x1-BN-act
                t.conv(channels, channels, self.kernel, h, w, groups=channels, norm=False)
                t.conv(channels, self.stage_channels, 1, h, w, activation=self.activation)
            else:
                t.conv(channels, self.stage_channels, self.kernel, h, w, activation=self.activation)
            channels = self.stage_channels
        # aggregation of the (unreduced) input and every layer's output; concatenation itself is free
        t.conv(cin + self.layers * self.stage_channels, self.out_channels, 1, h, w, activation=self.activation)
        if self.ese:  # eSE: one 1x1 conv with bias on the 1x1 pooled map; the gate's multiply is not counted
            t.conv(self.out_channels, self.out_channels, 1, 1, 1, bias=True, norm=False)
