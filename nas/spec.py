"""Architecture specs: the one currency of nas.

A spec is data: a stem (a few layers that are never repeated), an ordered list of stages (a block
and how many times it repeats) and a head. The YAML form is one line per stage::

    stages:
      - {block: mbconv, repeats: 2, kernel: 3, stride: 2, expansion: 6, out_channels: 24, se_ratio: 0.25}

Every block kind is a small frozen dataclass below; its fields are the block's arguments, named in
words. A spec stores base channels and repeats plus width / depth multipliers; :func:`resolve`
applies the multipliers with EfficientNet's rounding and checks that the layers chain (channels
match, the image does not shrink to nothing). Both the cost model and the torch builder consume the
resolved form, so they can never disagree about what the architecture is.

This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field, fields, replace  # noqa: F401  (replace is re-exported)
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Iterable

import yaml

from .errors import SpecError

ACTIVATIONS = ("relu", "relu6", "swish", "hswish", "prelu", "sigmoid", "none")
MAX_KERNEL = 11


# --------------------------------------------------------------------------------------------
# Rounding (EfficientNet's round_filters / round_repeats)
# --------------------------------------------------------------------------------------------

def round_channels(channels: float, multiplier: float = 1.0, divisor: int = 8) -> int:
    """Scale ``channels`` and round to a multiple of ``divisor``, never below 90 % of the scaled value.

    This is EfficientNet's ``round_filters`` (also MobileNet's ``_make_divisible``). With
    multiplier 1.0 and channels already a multiple of the divisor it returns them unchanged.
    """
    scaled = channels * multiplier
    if multiplier == 1.0 and float(scaled).is_integer() and int(scaled) % divisor == 0:
        return int(scaled)
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, multiplier: float = 1.0) -> int:
    """EfficientNet's ``round_repeats``: scale and round up."""
    return int(math.ceil(multiplier * repeats))


# --------------------------------------------------------------------------------------------
# Block kinds. Field order is the YAML order. ``channel_fields`` are scaled by the width multiplier.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    kind: ClassVar[str] = ""
    channel_fields: ClassVar[tuple[str, ...]] = ("out_channels",)
    #: False for blocks without weights (pooling): the depth multiplier never repeats them.
    scales_with_depth: ClassVar[bool] = True

    def check(self, where: str) -> None:
        """Field-level checks that need no neighbours; chain checks live in :func:`resolve`."""


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


@dataclass(frozen=True)
class MBConv(Block):
    """Inverted residual (MobileNetV2 / MnasNet / EfficientNet): 1x1 expand, kxk depthwise, SE, 1x1 project.

    ``se_ratio`` is relative to the block's *input* channels: squeeze width = max(1, int(in * se_ratio)).
    The identity skip (with drop-path) is used when ``skip`` and stride 1 and in == out channels.
    """

    kind: ClassVar[str] = "mbconv"
    out_channels: int = 0
    kernel: int = 3
    stride: int = 1
    expansion: float = 6.0  # expanded channels = in * expansion; 1 means no expand conv
    se_ratio: float = 0.0
    activation: str = "swish"
    skip: bool = True


@dataclass(frozen=True)
class Separable(Block):
    """Depthwise-separable conv (MobileNetV1 / Xception / PP-LCNet / MnasNet's SepConv): kxk depthwise, SE, 1x1.

    ``se_ratio`` is relative to the block's input channels. ``pointwise_activation`` False gives the
    linear bottleneck of MnasNet / EfficientNet's first block.
    """

    kind: ClassVar[str] = "separable"
    out_channels: int = 0
    kernel: int = 3
    stride: int = 1
    se_ratio: float = 0.0
    activation: str = "relu"
    pointwise_activation: bool = True
    skip: bool = False  # identity when stride 1 and in == out channels


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


@dataclass(frozen=True)
class Fire(Block):
    """SqueezeNet's Fire module: 1x1 squeeze, then 1x1 and 3x3 expand convs of out/2 each, concatenated.

    stride 2 puts SqueezeNet's 3x3 / 2 max-pool (ceil mode) in front of the block.
    """

    kind: ClassVar[str] = "fire"
    channel_fields: ClassVar[tuple[str, ...]] = ("out_channels", "squeeze_channels")
    out_channels: int = 0
    squeeze_channels: int = 0
    stride: int = 1
    activation: str = "relu"


@dataclass(frozen=True)
class Shuffle(Block):
    """ShuffleNetV2 unit. stride 1: split channels in half, transform one half (1x1, kxk depthwise, 1x1),
    concatenate, shuffle. stride 2: both halves see the whole input and both down-sample."""

    kind: ClassVar[str] = "shuffle"
    out_channels: int = 0
    kernel: int = 3
    stride: int = 1
    activation: str = "relu"


BLOCK_KINDS: dict[str, type[Block]] = {
    cls.kind: cls for cls in (Conv, MaxPool, MBConv, Separable, OSA, EESP, Fire, Shuffle)
}


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
    notes: str = ""  # provenance: the paper, the reference code followed, and where they disagree


# --------------------------------------------------------------------------------------------
# Field checks
# --------------------------------------------------------------------------------------------

# Upper limits. They are far above any published network; they exist so that a typo such as
# ``repeats: 1e9`` or ``out_channels: 10**400`` gives a one-line error instead of a hang or an overflow.
MAX_CHANNELS = 65536
MAX_REPEATS = 100       # per stage, before the depth multiplier
MAX_LAYERS = 64         # OSA layers, EESP branches: loops inside one block
MAX_DIVISOR = 256


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """An int or a finite float (math.isfinite would overflow on a huge int, which is finite anyway)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_int(value)


def _check_positive_int(where: str, value, allowed: str = "a positive integer", maximum: int | None = None) -> None:
    """``allowed`` should state ``maximum`` when one is given."""
    if not _is_int(value) or value < 1 or (maximum is not None and value > maximum):
        raise SpecError(where, value, allowed)


def _check_block_fields(block: Block, where: str) -> None:
    """Type and range of every field of ``block``, by name; fields without a rule here are checked by type."""
    for f in fields(block):
        value = getattr(block, f.name)
        path = f"{where}.{f.name}"
        if f.name in block.channel_fields:
            _check_positive_int(path, value, f"a positive number of channels up to {MAX_CHANNELS}", MAX_CHANNELS)
        elif f.name == "kernel":
            if not _is_int(value) or not 1 <= value <= MAX_KERNEL or value % 2 == 0:
                raise SpecError(path, value, f"an odd integer from 1 to {MAX_KERNEL}")
        elif f.name == "stride":
            if not _is_int(value) or value not in (1, 2):
                raise SpecError(path, value, "1 or 2")
        elif f.name == "activation":
            if not isinstance(value, str) or value not in ACTIVATIONS:
                raise SpecError(path, value, "one of " + ", ".join(ACTIVATIONS))
        elif f.name == "se_ratio":
            if not _is_number(value) or not 0 <= value <= 1:
                raise SpecError(path, value, "a number from 0 to 1 (relative to the block's input channels)")
        elif f.name == "expansion":
            if not _is_number(value) or not 1 <= value <= 16:
                raise SpecError(path, value, "a number from 1 to 16")
        elif f.name in ("layers", "branches"):
            _check_positive_int(path, value, f"a positive integer up to {MAX_LAYERS}", MAX_LAYERS)
        elif f.name == "groups":
            _check_positive_int(path, value, f"a positive integer up to {MAX_CHANNELS}", MAX_CHANNELS)
        elif f.name == "receptive_limit":
            if not _is_int(value) or not 3 <= value <= 17 or value % 2 == 0:
                raise SpecError(path, value, "an odd integer from 3 to 17 (a 3x3 kernel's receptive field)")
        elif f.name == "padding":
            # torch's pooling refuses more than half the kernel, and more would grow a conv's map: same rule for both
            kernel = getattr(block, "kernel", 1)
            null = ", or null for 'same' padding" if f.default is None else ""
            if value is None and f.default is None:
                continue
            if not _is_int(value) or not 0 <= value <= kernel // 2:
                raise SpecError(path, value, f"an integer from 0 to {kernel // 2} (half the kernel {kernel}){null}")
        elif f.type == "bool":
            if not isinstance(value, bool):
                raise SpecError(path, value, "true or false")
        elif f.type == "int":
            if not _is_int(value):
                raise SpecError(path, value, "an integer")
        elif f.type == "float":
            if not _is_number(value):
                raise SpecError(path, value, "a number")
        elif f.type == "str":
            if not isinstance(value, str):
                raise SpecError(path, value, "a string")
    block.check(where)


def _check_spec_fields(spec: Spec) -> None:
    """The spec's own fields, its stages' repeats and its head. The blocks' fields are checked by
    :func:`_block_from_dict` when read and by :func:`resolve` (once per block, cached) for specs made in Python."""
    if not isinstance(spec.name, str):
        raise SpecError("name", spec.name, "a string")
    if not isinstance(spec.notes, str):
        raise SpecError("notes", spec.notes, "a string")
    _check_positive_int("resolution", spec.resolution, "a positive image side in pixels")
    _check_positive_int("num_classes", spec.num_classes)
    _check_positive_int("in_channels", spec.in_channels, f"a positive number of channels up to {MAX_CHANNELS}",
                        MAX_CHANNELS)
    _check_positive_int("channel_divisor", spec.channel_divisor, f"a positive integer up to {MAX_DIVISOR}",
                        MAX_DIVISOR)
    for name in ("width_multiplier", "depth_multiplier"):
        value = getattr(spec, name)
        if not _is_number(value) or not 0 < value <= 16:
            raise SpecError(name, value, "a number in (0, 16]")
    if not _is_number(spec.drop_path) or not 0 <= spec.drop_path < 1:
        raise SpecError("drop_path", spec.drop_path, "a number in [0, 1)")
    if not spec.stages:
        raise SpecError("stages", [], "a non-empty list of stages")
    for i, block in enumerate(spec.stem):
        if not isinstance(block, Block):
            raise SpecError(f"stem[{i}]", block, "a block (nas.spec.Conv, MaxPool, ...)")
    for i, stage in enumerate(spec.stages):
        if not isinstance(stage, Stage) or not isinstance(stage.block, Block):
            raise SpecError(f"stages[{i}]", stage, "a Stage(block, repeats)")
        _check_positive_int(f"stages[{i}].repeats", stage.repeats, f"a positive integer up to {MAX_REPEATS}",
                            MAX_REPEATS)
    head = spec.head
    if not isinstance(head, Head):
        raise SpecError("head", head, "a Head")
    if not isinstance(head.kind, str) or head.kind not in HEAD_KINDS:
        raise SpecError("head.kind", head.kind, "one of " + ", ".join(HEAD_KINDS))
    if not _is_int(head.channels) or not 0 <= head.channels <= MAX_CHANNELS:
        raise SpecError("head.channels", head.channels,
                        f"a number of channels from 0 to {MAX_CHANNELS} (0 = no head conv)")
    if head.kind == "pool_conv_linear" and head.channels == 0:
        raise SpecError("head.channels", 0, "a positive number of channels for head kind pool_conv_linear")
    if not isinstance(head.activation, str) or head.activation not in ACTIVATIONS:
        raise SpecError("head.activation", head.activation, "one of " + ", ".join(ACTIVATIONS))
    if not _is_number(head.dropout) or not 0 <= head.dropout < 1:
        raise SpecError("head.dropout", head.dropout, "a number in [0, 1)")
    if not isinstance(head.scale_channels, bool):
        raise SpecError("head.scale_channels", head.scale_channels, "true or false")


# --------------------------------------------------------------------------------------------
# Resolution: multipliers applied, repeats expanded, chain checked
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResolvedBlock:
    """One concrete block: its arguments with final channels, where it sits and what it sees."""

    block: Block
    in_channels: int
    in_size: tuple[int, int]    # (height, width) of the input feature map
    out_size: tuple[int, int]
    stage: int                  # -1 for the stem
    drop_path: float = 0.0      # this block's stochastic-depth rate (0 without a residual)


@dataclass(frozen=True)
class Resolved:
    spec: Spec
    blocks: tuple[ResolvedBlock, ...]
    head_in_channels: int
    head_channels: int          # after the width multiplier (when the head scales)
    final_size: tuple[int, int]


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output side of a convolution or pooling window, as torch computes it."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        # torch drops a last window that would start entirely inside the right padding
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def block_out_channels(block: Block, in_channels: int) -> int:
    if isinstance(block, MaxPool):
        return in_channels
    return block.out_channels


def block_out_size(block: Block, h: int, w: int) -> tuple[int, int]:
    """Spatial size after ``block``. All blocks keep odd-kernel 'same' padding except where stated."""
    if isinstance(block, MaxPool):
        return (conv_out(h, block.kernel, block.stride, block.padding, 1, block.ceil_mode),
                conv_out(w, block.kernel, block.stride, block.padding, 1, block.ceil_mode))
    if isinstance(block, Conv):
        pad = (block.kernel - 1) // 2 if block.padding is None else block.padding
        return conv_out(h, block.kernel, block.stride, pad), conv_out(w, block.kernel, block.stride, pad)
    if isinstance(block, (OSA, Fire)) and block.stride == 2:  # max-pool 3x3 / 2, ceil mode, in front
        return conv_out(h, 3, 2, 0, 1, True), conv_out(w, 3, 2, 0, 1, True)
    if block.stride == 2:  # every strided conv here is odd-kernel with 'same' padding
        return (h - 1) // 2 + 1, (w - 1) // 2 + 1
    return h, w


def _check_chain(block: Block, cin: int, where: str) -> None:
    """Checks that need the block's input channels."""
    cout = block_out_channels(block, cin)
    if isinstance(block, Conv):
        groups = cin if block.depthwise else block.groups
        if block.depthwise and cout != cin:
            raise SpecError(f"{where}.out_channels", cout, f"{cin} (a depthwise conv keeps its {cin} input channels)")
        if cin % groups or cout % groups:
            raise SpecError(f"{where}.groups", groups, f"a divisor of both {cin} input and {cout} output channels")
    elif isinstance(block, MBConv):
        pass
    elif isinstance(block, OSA):
        if block.skip and cin != cout:
            raise SpecError(f"{where}.skip", True, f"false, or out_channels equal to the {cin} input channels")
    elif isinstance(block, EESP):
        # The EESP transform makes `produced` channels from k branches of n = produced / k each; the 1x1
        # reduce (cin -> n) has k groups, so k must divide both cin and n, i.e. k * k divides `produced`.
        k = block.branches
        produced = cout - cin if block.stride == 2 else cout
        if block.stride == 2 and produced <= 0:
            raise SpecError(f"{where}.out_channels", cout, f"more than the {cin} input channels (a strided EESP concatenates its pooled input)")
        if produced % (k * k):
            what = f"out_channels - {cin} input channels" if block.stride == 2 else "out_channels"
            raise SpecError(f"{where}.out_channels", cout,
                            f"a value whose {what} is a multiple of branches^2 = {k * k} ({k} branches of a width "
                            f"that the {k}-group reduce conv divides)")
        if cin % k:
            raise SpecError(f"{where}.branches", k, f"a divisor of the {cin} input channels (the reduce conv has {k} groups)")
    elif isinstance(block, Fire):
        if cout % 2:
            raise SpecError(f"{where}.out_channels", cout, "an even number (half 1x1, half 3x3)")
    elif isinstance(block, Shuffle):
        if cout % 2:
            raise SpecError(f"{where}.out_channels", cout, "an even number (two halves)")
        if block.stride == 1 and cin != cout:
            raise SpecError(f"{where}.out_channels", cout, f"{cin}: a stride-1 shuffle unit keeps its channels")


@lru_cache(maxsize=4096)
def _scaled_block(block: Block, width: float, divisor: int) -> Block:
    if width == 1.0 and all(getattr(block, n) % divisor == 0 for n in block.channel_fields):
        return block
    return replace(block, **{n: round_channels(getattr(block, n), width, divisor) for n in block.channel_fields})


def stage_repeats(spec: Spec, stage: Stage) -> int:
    return round_repeats(stage.repeats, spec.depth_multiplier) if stage.block.scales_with_depth else stage.repeats


def _has_residual(block: Block, cin: int) -> bool:
    """Whether the block adds an identity (and so takes a drop-path rate)."""
    if isinstance(block, (MBConv, Separable)):
        return block.skip and block.stride == 1 and cin == block.out_channels
    if isinstance(block, OSA):
        return block.skip  # VoVNetV2's identity, added after the pool at any stride
    if isinstance(block, EESP):
        return block.stride == 1 and cin == block.out_channels
    return False


@lru_cache(maxsize=4096)
def _resolve_stage(block: Block, repeats: int, width: float, depth: float, divisor: int, cin: int, h: int, w: int,
                   where: str, index: int) -> tuple[tuple[tuple[ResolvedBlock, bool], ...], int, tuple[int, int]]:
    """One stage (or stem layer) on a (cin, h, w) input.

    Checks the block's fields, scales its channels and repeats, expands the repeats (only the first
    one strides) and checks that each repeat chains. Returns a (resolved block, has a residual) row
    per repeat, and the stage's output channels and size. Stops after a block whose output vanishes;
    the caller reports it. Cached: a search puts the same stage on the same input over and over.
    Drop-path rates depend on the whole network, so they are left at 0 here and set by :func:`resolve`.
    """
    _check_block_fields(block, where)
    first = _scaled_block(block, width, divisor)
    rest = replace(first, stride=1) if getattr(first, "stride", 1) != 1 else first
    n = round_repeats(repeats, depth) if block.scales_with_depth else repeats  # as stage_repeats()
    rows = []
    for r in range(n):
        b = first if r == 0 else rest
        _check_chain(b, cin, where)
        oh, ow = block_out_size(b, h, w)
        rows.append((ResolvedBlock(b, cin, (h, w), (oh, ow), index), _has_residual(b, cin)))
        cin, h, w = block_out_channels(b, cin), oh, ow
        if h < 1 or w < 1:
            break
    return tuple(rows), cin, (h, w)


@lru_cache(maxsize=1024)
def resolve(spec: Spec) -> Resolved:
    """Apply multipliers, expand repeats, track channels and sizes; raise SpecError if the layers don't chain."""
    _check_spec_fields(spec)
    width, depth, div = spec.width_multiplier, spec.depth_multiplier, spec.channel_divisor
    # (where, block, repeats, depth multiplier, stage index); stem layers never repeat
    stages = [(f"stem[{i}]", block, 1, 1.0, -1) for i, block in enumerate(spec.stem)]
    stages += [(f"stages[{i}]", stage.block, stage.repeats, depth, i) for i, stage in enumerate(spec.stages)]
    cin, size = spec.in_channels, (spec.resolution, spec.resolution)
    chained: list[tuple[ResolvedBlock, bool]] = []
    for where, block, repeats, stage_depth, index in stages:
        rows, cin, size = _resolve_stage(block, repeats, width, stage_depth, div, cin, *size, where, index)
        if size[0] < 1 or size[1] < 1:
            raise SpecError("resolution", spec.resolution, f"a larger image: the feature map vanishes at {where}")
        if (isinstance(block, EESP) and block.input_reinforcement and block.stride == 2
                and spec.in_channels != EESP.image_channels):
            raise SpecError(f"{where}.input_reinforcement", True, f"false: input reinforcement reads a "
                            f"{EESP.image_channels}-channel image and in_channels is {spec.in_channels}")
        chained += rows
    # Stochastic depth grows linearly over the residual blocks of the whole network (EfficientNet).
    out = [rb for rb, _ in chained]
    if spec.drop_path > 0:
        residual_at = [i for i, (_, residual) in enumerate(chained) if residual]
        for seen, i in enumerate(residual_at):
            rb = out[i]
            rate = spec.drop_path * seen / len(residual_at)
            out[i] = ResolvedBlock(rb.block, rb.in_channels, rb.in_size, rb.out_size, rb.stage, rate)
    head = spec.head
    head_channels = head.channels
    if head_channels and head.scale_channels:
        head_channels = round_channels(head_channels, width, div)
    return Resolved(spec, tuple(out), cin, head_channels, size)


# --------------------------------------------------------------------------------------------
# Dict / YAML form
# --------------------------------------------------------------------------------------------

_SPEC_SCALARS = ("name", "resolution", "num_classes", "in_channels", "width_multiplier", "depth_multiplier",
                 "channel_divisor", "drop_path", "notes")
_SPEC_KEYS = _SPEC_SCALARS + ("stem", "stages", "head")


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _block_from_dict(data: Any, where: str, allow_repeats: bool) -> tuple[Block, int]:
    """One stem layer or stage from its YAML mapping; returns the checked block and its repeats."""
    if not isinstance(data, dict):
        raise SpecError(where, data, "a mapping such as {block: mbconv, out_channels: 24, ...}")
    data = dict(data)
    kind = data.pop("block", None)
    if not isinstance(kind, str) or kind not in BLOCK_KINDS:
        raise SpecError(f"{where}.block", kind, "one of " + ", ".join(BLOCK_KINDS) + _did_you_mean(kind, BLOCK_KINDS))
    cls = BLOCK_KINDS[kind]
    repeats = data.pop("repeats", 1) if allow_repeats else 1
    _check_positive_int(f"{where}.repeats", repeats, f"a positive integer up to {MAX_REPEATS}", MAX_REPEATS)
    allowed = [f.name for f in fields(cls)]
    for key in data:
        if key not in allowed:
            raise SpecError(f"{where}.{key}", data[key],
                            f"no such field for block {kind}; its fields are " + ", ".join(allowed) + _did_you_mean(key, allowed))
    for name in cls.channel_fields:
        if name not in data:
            raise SpecError(f"{where}.{name}", None, f"a positive number of channels up to {MAX_CHANNELS} (required)")
    block = cls(**data)
    _check_block_fields(block, where)
    return block, repeats

def _block_to_dict(block: Block) -> dict:
    out: dict[str, Any] = {"block": block.kind}
    for f in fields(block):
        value = getattr(block, f.name)
        if f.name in block.channel_fields or value != f.default:
            out[f.name] = _plain(value)
    return out


def _plain(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def from_dict(data: Any, source: str = "spec") -> Spec:
    """Validate a plain dict (from YAML) into a Spec; raise SpecError naming the first bad field.

    Checks every field's type and range. Whether the layers chain (channels match, the image does not
    vanish) is checked by :func:`resolve`, i.e. by ``count_cost`` and ``build_model``.
    """
    if not isinstance(data, dict):
        given = "an empty document" if data is None else type(data).__name__
        raise SpecError(source, given, "a mapping with keys " + ", ".join(_SPEC_KEYS))
    for key in data:
        if key not in _SPEC_KEYS:
            raise SpecError(str(key), data[key], "a spec key: " + ", ".join(_SPEC_KEYS) + _did_you_mean(key, _SPEC_KEYS))
    if not isinstance(data.get("stages"), list) or not data["stages"]:
        raise SpecError("stages", data.get("stages"), "a non-empty list of stages")
    stem_data = [] if data.get("stem") is None else data["stem"]
    if not isinstance(stem_data, list):
        raise SpecError("stem", stem_data, "a list of blocks")
    stem = tuple(_block_from_dict(b, f"stem[{i}]", False)[0] for i, b in enumerate(stem_data))
    stages = tuple(Stage(*_block_from_dict(item, f"stages[{i}]", True)) for i, item in enumerate(data["stages"]))
    head_keys = [f.name for f in fields(Head)]
    head_data = {} if data.get("head") is None else data["head"]
    if not isinstance(head_data, dict):
        raise SpecError("head", head_data, "a mapping with keys " + ", ".join(head_keys))
    for key in head_data:
        if key not in head_keys:
            raise SpecError(f"head.{key}", head_data[key], "one of " + ", ".join(head_keys) + _did_you_mean(key, head_keys))
    scalars = {k: data[k] for k in _SPEC_SCALARS if k in data}
    scalars.setdefault("name", "unnamed")
    spec = Spec(stem=stem, stages=stages, head=Head(**head_data), **scalars)
    _check_spec_fields(spec)
    return spec

def to_dict(spec: Spec) -> dict:
    out: dict[str, Any] = {"name": spec.name}
    for key in _SPEC_SCALARS[1:]:
        value = getattr(spec, key)
        default = next(f.default for f in fields(Spec) if f.name == key)
        if value != default:
            out[key] = _plain(value)
    out["stem"] = [_block_to_dict(b) for b in spec.stem]
    out["stages"] = [{**{"block": s.block.kind, "repeats": s.repeats}, **_block_to_dict(s.block)} for s in spec.stages]
    out["head"] = {f.name: _plain(getattr(spec.head, f.name)) for f in fields(Head)}
    return out


class _FlowStages(yaml.SafeDumper):
    """Writes each block as a one-line mapping, so a spec reads as a table of stages."""


def _represent_dict(dumper, data):
    flow = all(not isinstance(v, (dict, list)) for v in data.values()) and "block" in data
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


_FlowStages.add_representer(dict, _represent_dict)


def dumps(spec: Spec) -> str:
    return yaml.dump(to_dict(spec), Dumper=_FlowStages, sort_keys=False, width=200)


def loads(text: str, source: str = "spec") -> Spec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(source, f"malformed YAML{where}: {problem}", "a YAML mapping (see README: spec format)") from None
    return from_dict(data, source)


_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write the whole file or nothing: a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(spec: Spec, path: str | os.PathLike) -> None:
    write_atomic(path, dumps(spec))


def load(path: str | os.PathLike) -> Spec:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError("spec", str(path), "an existing YAML file or a zoo name") from None
    except UnicodeDecodeError:
        raise SpecError("spec", str(path), "a YAML text file in UTF-8 (this one is binary or another encoding)") from None
    except OSError as exc:  # a directory, no permission, ...
        raise SpecError("spec", str(path), f"a readable YAML file ({exc.strerror or type(exc).__name__})") from None
    return loads(text, source=str(path))


def spec_hash(spec: Spec) -> str:
    """A short, stable digest of what the architecture *is* (the name and notes don't count)."""
    data = to_dict(replace(spec, name="", notes=""))
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def with_overrides(spec: Spec, **changes) -> Spec:
    """A copy of ``spec`` with top-level fields changed (``head`` may be a dict of head fields)."""
    if isinstance(changes.get("head"), dict):
        changes["head"] = replace(spec.head, **changes["head"])
    return replace(spec, **changes)


__all__ = [
    "ACTIVATIONS", "BLOCK_KINDS", "Block", "Conv", "MaxPool", "MBConv", "Separable", "OSA", "EESP", "Fire",
    "Shuffle", "Stage", "Head", "HEAD_KINDS", "Spec", "Resolved", "ResolvedBlock", "resolve", "round_channels",
    "round_repeats", "from_dict", "to_dict", "dumps", "loads", "load", "save", "spec_hash", "write_atomic",
    "with_overrides", "conv_out", "dataclasses",
]
