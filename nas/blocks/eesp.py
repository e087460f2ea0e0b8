"""ESPNetv2's EESP block and its strided form with input reinforcement.

Follows the reference code (sacmehta/ESPNetv2 imagenet/Model.py; the same classes live in sacmehta/EdgeNets
nn_layers/eesp.py), where the paper's figures leave details open:

- EESP: grouped 1x1 reduce (conv-BN-PReLU, ``branches`` groups) to n = out / branches channels; ``branches``
  depthwise dilated 3x3 convs on the reduced map (no BN), dilations ascending; hierarchical feature fusion
  (branch i adds the fused output of branch i - 1); concatenate; BN-PReLU; grouped 1x1 expand (conv-BN,
  ``branches`` groups); identity added when input and output shapes match; PReLU.
- strided EESP (the reference's ``DownSampler``): the same transform at stride 2 producing out - in channels,
  concatenated after a 3x3 / 2 average-pooled copy of the input; with input reinforcement, plus
  conv-BN-PReLU 3x3 and conv-BN 1x1 (to out) applied to the image average-pooled down to this size; PReLU.

The reference builds two modules it never calls (the strided transform's own PReLU and the last level's
reinforcement branch); we build only what runs, so nothing here is an unused parameter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import spec
from ..spec import eesp_dilations
from .layers import ConvNormAct, DropPath, activation


class EESPTransform(nn.Module):
    """Reduce, split, transform, fuse, merge: EESP up to (not including) its residual and final activation."""

    def __init__(self, cin: int, cout: int, stride: int, branches: int, receptive_limit: int, act: str):
        super().__init__()
        n = cout // branches
        self.reduce = ConvNormAct(cin, n, 1, groups=branches, act=act)
        # Each branch sees the whole reduced map at a different dilation (a spatial pyramid); sorted
        # ascending so that fusion goes from the smallest receptive field to the largest.
        self.dilated = nn.ModuleList(
            nn.Conv2d(n, n, 3, stride, padding=d, dilation=d, groups=n, bias=False)
            for d in eesp_dilations(branches, receptive_limit)
        )
        self.merge = nn.Sequential(nn.BatchNorm2d(cout), activation(act, cout))
        self.expand = ConvNormAct(cout, cout, 1, groups=branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        fused: list[torch.Tensor] = []
        for conv in self.dilated:
            out = conv(reduced)
            # hierarchical feature fusion: adding the previous (already fused) branch removes gridding artefacts
            fused.append(out + fused[-1] if fused else out)
        return self.expand(self.merge(torch.cat(fused, 1)))


class EESPUnit(nn.Module):
    """Stride-1 EESP: the transform, the identity when channels match, PReLU."""

    takes_image = False

    def __init__(self, block: spec.EESP, cin: int, drop_path: float = 0.0):
        super().__init__()
        cout = block.out_channels
        self.transform = EESPTransform(cin, cout, 1, block.branches, block.receptive_limit, block.activation)
        self.residual = block.has_residual(cin)
        self.drop_path = DropPath(drop_path) if self.residual else nn.Identity()
        self.act = activation(block.activation, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.transform(x)
        if self.residual:
            out = x + self.drop_path(out)
        return self.act(out)


def pool_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average-pool (3x3 / 2, padding 1) the image repeatedly until it has ``size``, as the reference does.

    That chain of poolings gives the same sizes as the network's 'same'-padded stride-2 layers. Where an
    earlier layer rounds down instead (a ceil-mode max-pool in a mixed architecture), the chain would miss
    ``size``; then the last pooling that does not undershoot is followed by an adaptive average pool.
    """
    h, w = size
    image = F.avg_pool2d(image, 3, 2, 1)  # the reference always pools at least once
    while (image.shape[-2] > h or image.shape[-1] > w) and (image.shape[-2] + 1) // 2 >= h \
            and (image.shape[-1] + 1) // 2 >= w:
        image = F.avg_pool2d(image, 3, 2, 1)
    if tuple(image.shape[-2:]) != (h, w):
        image = F.adaptive_avg_pool2d(image, (h, w))
    return image


class StridedEESP(nn.Module):
    """ESPNetv2's down-sampler: [avg-pooled input, stride-2 EESP transform] concatenated, (+ image projection), PReLU.

    With input reinforcement the instance's ``takes_image`` is True and the builder calls it as
    ``module(x, image)`` with the network's input image.
    """

    takes_image = False

    def __init__(self, block: spec.EESP, cin: int, image_channels: int = spec.EESP.image_channels):
        super().__init__()
        cout, act = block.out_channels, block.activation
        self.pool = nn.AvgPool2d(3, 2, padding=1)
        self.transform = EESPTransform(cin, cout - cin, 2, block.branches, block.receptive_limit, act)
        if block.input_reinforcement:
            self.reinforce = nn.Sequential(
                ConvNormAct(image_channels, image_channels, 3, act=act),
                ConvNormAct(image_channels, cout, 1),
            )
            self.takes_image = True
        self.act = activation(act, cout)

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.cat([self.pool(x), self.transform(x)], 1)
        if self.takes_image:
            if image is None:
                raise ValueError("this strided EESP has input reinforcement: call it as module(x, image)")
            out = out + self.reinforce(pool_image(image, (out.shape[-2], out.shape[-1])))
        return self.act(out)


def build_eesp(block: spec.EESP, cin: int, drop_path: float = 0.0,
               image_channels: int = spec.EESP.image_channels) -> nn.Module:
    """Block kind ``eesp``: the strided form at stride 2 (no residual, so no drop-path), else the EESP unit."""
    if block.stride == 2:
        return StridedEESP(block, cin, image_channels)
    return EESPUnit(block, cin, drop_path)

