"""The spec's own dataclasses: a stem, stages of repeated blocks, a head, and the network-wide fields.

A spec is data: a stem (a few layers that are never repeated), an ordered list of stages (a block
and how many times it repeats) and a head. It stores base channels and repeats plus width / depth
multipliers; :func:`nas.spec.resolve` applies them. The block kinds live in :mod:`nas.spec.kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .kinds import Block


@dataclass(frozen=True)
class Stage:
    """A block repeated ``repeats`` times; only the first repeat has the block's stride and input channels."""

    block: Block
    repeats: int = 1


@dataclass(frozen=True)
class Head:
    """What turns the last feature map into class scores.

    kind ``conv_pool_linear``: 1x1 conv-BN-act to ``channels`` (0 = none), global average pool, dropout, linear
      (EfficientNet, MobileNet, ShuffleNet, VoVNet, ESPNetv2).
    kind ``pool_conv_linear``: global average pool, 1x1 conv to ``channels`` without BN or bias, act, dropout,
      linear (PP-LCNet).
    kind ``conv_classifier``: dropout, 1x1 conv with bias to the classes, act, global average pool (SqueezeNet).
    ``scale_channels``: whether the width multiplier scales ``channels`` (EfficientNet: yes; PP-LCNet: no).
    """

    kind: str = "conv_pool_linear"
    channels: int = 0
    activation: str = "relu"
    dropout: float = 0.0
    scale_channels: bool = True


HEAD_KINDS = ("conv_pool_linear", "pool_conv_linear", "conv_classifier")


@dataclass(frozen=True)
class Spec:
    name: str
    stem: tuple[Block, ...]
    stages: tuple[Stage, ...]
    head: Head = Head()
    resolution: int = 224
    num_classes: int = 1000
    in_channels: int = 3
    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    channel_divisor: int = 8
    drop_path: float = 0.0  # stochastic-depth rate of the last residual block, linear from 0 (EfficientNet)
    # Every batch norm of the built model; PyTorch's convention: running = (1 - momentum) * running + momentum * batch
    # (TensorFlow's EfficientNet uses eps 1e-3 and decay 0.99, i.e. momentum 0.01).
    batch_norm_eps: float = 1e-5
    batch_norm_momentum: float = 0.1
    notes: str = ""  # provenance: the paper, the reference code followed, and where they disagree


def with_overrides(spec: Spec, **changes) -> Spec:
    """A copy of ``spec`` with top-level fields changed (``head`` may be a dict of head fields)."""
    if isinstance(changes.get("head"), dict):
        changes["head"] = replace(spec.head, **changes["head"])
    return replace(spec, **changes)
