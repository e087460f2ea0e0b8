"""ESPNetv2's EESP block and its strided form ("down-sampler") with input reinforcement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import SpecError
from .base import Block, LayerTally


def eesp_dilations(branches: int, receptive_limit: int) -> list[int]:
    """ESPNetv2: branch i has a 3x3 kernel dilated to receptive field 3 + 2i, falling back to 3 (dilation 1)
    past ``receptive_limit``; sorted ascending. Receptive field r of a dilated 3x3 means dilation (r - 1) / 2."""
    fields_ = sorted(3 + 2 * i if 3 + 2 * i <= receptive_limit else 3 for i in range(branches))
    return [(r - 1) // 2 for r in fields_]


@dataclass(frozen=True)
class EESP(Block):
    """Extremely Efficient Spatial Pyramid (ESPNetv2).

    Grouped 1x1 reduce to out/branches channels, ``branches`` depthwise dilated 3x3 convs whose dilations
    follow from ``receptive_limit``, hierarchical feature fusion, grouped 1x1 expand, residual.
    stride 2 is the strided EESP ("down-sampler"): the EESP output (out - in channels) is concatenated
    with a 3x3 / 2 average-pooled input, and ``input_reinforcement`` adds a projection of the
    average-pooled image (3x3 conv-BN-act on its ``image_channels`` channels, 1x1 conv-BN to out).
    ``input_reinforcement`` only acts at stride 2: a stage's stride-1 repeats ignore it.
    """

    kind: ClassVar[str] = "eesp"
    #: channels of the image that input reinforcement reads: RGB, as in the reference code (config_inp_reinf)
    image_channels: ClassVar[int] = 3
    out_channels: int = 0
    stride: int = 1
    branches: int = 4
    receptive_limit: int = 7
    input_reinforcement: bool = False
    activation: str = "prelu"

    def dilations(self) -> list[int]:
        return eesp_dilations(self.branches, self.receptive_limit)

    def transform_channels(self, cin: int) -> int:
        """Channels the EESP transform makes: all of them, or at stride 2 what the pooled input leaves."""
        return self.out_channels - cin if self.stride == 2 else self.out_channels

    def reads_image(self) -> bool:
        return self.input_reinforcement and self.stride == 2

    def has_residual(self, cin: int) -> bool:
        return self.stride == 1 and cin == self.out_channels

    def check(self, where: str, cin: int) -> None:
        # The EESP transform makes `produced` channels from k branches of n = produced / k each; the 1x1
        # reduce (cin -> n) has k groups, so k must divide both cin and n, i.e. k * k divides `produced`.
        k, cout = self.branches, self.out_channels
        produced = self.transform_channels(cin)
        if self.stride == 2 and produced <= 0:
            raise SpecError(f"{where}.out_channels", cout,
                            f"more than the {cin} input channels (a strided EESP concatenates its pooled input)")
        if produced % (k * k):
            what = f"out_channels - {cin} input channels" if self.stride == 2 else "out_channels"
            raise SpecError(f"{where}.out_channels", cout,
                            f"a value whose {what} is a multiple of branches^2 = {k * k} ({k} branches of a width "
                            f"that the {k}-group reduce conv divides)")
        if cin % k:
            raise SpecError(f"{where}.branches", k,
                            f"a divisor of the {cin} input channels (the reduce conv has {k} groups)")

    def check_image(self, where: str, image_channels: int) -> None:
        if self.reads_image() and image_channels != self.image_channels:
            raise SpecError(f"{where}.input_reinforcement", True, f"false: input reinforcement reads a "
                            f"{self.image_channels}-channel image and in_channels is {image_channels}")

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        """Mirrors nas/blocks/eesp.py: the EESP transform, then (stride 1) the unit's PReLU, or (stride 2) the
        down-sampler's input reinforcement and PReLU. Pooling, concatenation and adds cost nothing here."""
        k, act = self.branches, self.activation
        produced = self.transform_channels(cin)
        n = produced // k
        t.conv(cin, n, 1, h, w, groups=k, activation=act)                  # grouped 1x1 reduce
        oh, ow = h, w
        for d in self.dilations():                                          # depthwise dilated branches, no BN
            oh, ow = t.conv(n, n, 3, h, w, self.stride, groups=n, norm=False, dilation=d)
        t.norm(produced)                                                    # BN + act after the concat
        t.activation(act, produced)
        t.conv(produced, produced, 1, oh, ow, groups=k)                     # grouped 1x1 expand (+BN)
        if self.reads_image():  # on the image, average-pooled down to this block's output size
            image = self.image_channels
            t.conv(image, image, 3, oh, ow, activation=act)
            t.conv(image, self.out_channels, 1, oh, ow)
        t.activation(act, self.out_channels)
