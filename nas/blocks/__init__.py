"""One small nn.Module per block kind, each built from its spec dataclass and its input channels.

Every constructor has the signature ``(block, in_channels, drop_path=0.0)``. A module whose
``takes_image`` attribute is True (ESPNetv2's input reinforcement) is called as ``module(x, image)``.
``BLOCK_MODULES`` is keyed by the kind's dataclass and must cover ``nas.spec.BLOCK_KINDS`` exactly.
"""

from collections.abc import Callable

from torch import nn

from .. import spec
from .conv import conv_block, maxpool_block
from .eesp import build_eesp
from .fire import Fire
from .mbconv import MBConv
from .osa import OSA
from .separable import Separable
from .shuffle import Shuffle

BLOCK_MODULES: dict[type[spec.Block], Callable[..., nn.Module]] = {
    spec.Conv: conv_block,
    spec.MaxPool: maxpool_block,
    spec.MBConv: MBConv,
    spec.Separable: Separable,
    spec.OSA: OSA,
    spec.EESP: build_eesp,
    spec.Fire: Fire,
    spec.Shuffle: Shuffle,
}

_missing = set(spec.BLOCK_KINDS.values()) ^ set(BLOCK_MODULES)
if _missing:  # a kind added to the spec without a module (or the reverse): fail at import, not mid-search
    raise ImportError("nas.blocks.BLOCK_MODULES and nas.spec.BLOCK_KINDS differ: "
                      + ", ".join(sorted(cls.kind for cls in _missing)))


def build_block(block: spec.Block, in_channels: int, drop_path: float = 0.0) -> nn.Module:
    """The torch module for one resolved block."""
    return BLOCK_MODULES[type(block)](block, in_channels, drop_path)


__all__ = ["BLOCK_MODULES", "build_block"]
