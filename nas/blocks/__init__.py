"""One small nn.Module per block kind, each built from its spec dataclass and its input channels.

Every constructor has the signature ``(block, in_channels, drop_path=0.0)``. A module whose
``takes_image`` attribute is True (ESPNetv2's input reinforcement) is called as ``module(x, image)``.
"""

from .conv import conv_block, maxpool_block
from .eesp import EESP
from .fire import Fire
from .mbconv import MBConv
from .osa import OSA
from .separable import Separable
from .shuffle import Shuffle

BLOCK_MODULES = {
    "conv": conv_block,
    "maxpool": maxpool_block,
    "mbconv": MBConv,
    "separable": Separable,
    "osa": OSA,
    "eesp": EESP,
    "fire": Fire,
    "shuffle": Shuffle,
}

__all__ = ["BLOCK_MODULES"]
