"""VoVNet's One-Shot Aggregation block."""

from __future__ import annotations

import torch
from torch import nn

from .. import spec
from .layers import ConvNormAct


class OSA(nn.Module):
    def __init__(self, block: spec.OSA, cin: int, drop_path: float = 0.0):
        super().__init__()
        raise NotImplementedError("OSA block: see nas/blocks/osa.py")
