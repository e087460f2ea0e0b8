"""The block kinds: one module per kind, each a dataclass with its rules (see :mod:`.base`).

``BLOCK_KINDS`` is the one table of kinds; the YAML reader, the cost model and the torch builder
(``nas.blocks.BLOCK_MODULES``, keyed by these classes) all derive from it. To add a kind, write its
module here, add its class below, and give it a torch module in ``nas/blocks``.
"""

from .base import Block, LayerTally
from .conv import Conv, MaxPool
from .eesp import EESP, eesp_dilations
from .fire import Fire
from .mbconv import MBConv, se_channels
from .osa import OSA
from .separable import Separable
from .shuffle import Shuffle

BLOCK_KINDS: dict[str, type[Block]] = {
    cls.kind: cls for cls in (Conv, MaxPool, MBConv, Separable, OSA, EESP, Fire, Shuffle)
}

__all__ = ["BLOCK_KINDS", "Block", "Conv", "EESP", "Fire", "LayerTally", "MBConv", "MaxPool", "OSA", "Separable",
           "Shuffle", "eesp_dilations", "se_channels"]
