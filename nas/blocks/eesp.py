"""ESPNetv2's EESP block and its strided form with input reinforcement."""

from __future__ import annotations

import torch
from torch import nn

from .. import spec
from .layers import ConvNormAct


class EESP(nn.Module):
    takes_image = False

    def __init__(self, block: spec.EESP, cin: int, drop_path: float = 0.0, image_channels: int = 3):
        super().__init__()
        raise NotImplementedError("EESP block: see nas/blocks/eesp.py")
