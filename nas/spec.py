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
    """One-Shot Aggregation (VoVNet): ``layers`` sequential kxk convs of ``stage_channels``, concatenated
    with the block input, aggregated by a 1x1 conv to ``out_channels``.

    stride 2 puts VoVNet's 3x3 / 2 max-pool (ceil mode) in front of the block. ``ese`` adds effective
    squeeze-excitation (one 1x1 conv with bias, hard-sigmoid gate); ``depthwise`` makes each layer a
    depthwise 3x3 preceded by a 1x1 to ``stage_channels`` (VoVNet-slim-dw); ``skip`` adds the identity
    of VoVNetV2 (requires in == out channels).
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
    average-pooled image.
    """

    kind: ClassVar[str] = "eesp"
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

def _check_positive_int(where: str, value, allowed: str = "a positive integer") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(where, value, allowed)


def _check_block_fields(block: Block, where: str) -> None:
    for f in fields(block):
        value = getattr(block, f.name)
        path = f"{where}.{f.name}"
        if f.name in block.channel_fields:
            _check_positive_int(path, value, "a positive number of channels")
        elif f.name == "kernel":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > MAX_KERNEL or value % 2 == 0:
                raise SpecError(path, value, f"an odd integer from 1 to {MAX_KERNEL}")
        elif f.name == "stride":
            if isinstance(value, bool) or value not in (1, 2):
                raise SpecError(path, value, "1 or 2")
        elif f.name == "activation":
            if value not in ACTIVATIONS:
                raise SpecError(path, value, "one of " + ", ".join(ACTIVATIONS))
        elif f.name == "se_ratio":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise SpecError(path, value, "a number from 0 to 1 (relative to the block's input channels)")
        elif f.name == "expansion":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 16:
                raise SpecError(path, value, "a number from 1 to 16")
        elif f.name in ("layers", "branches", "groups"):
            _check_positive_int(path, value)
        elif f.name == "receptive_limit":
            if isinstance(value, bool) or not isinstance(value, int) or value < 3 or value % 2 == 0 or value > 17:
                raise SpecError(path, value, "an odd integer from 3 to 17 (a 3x3 kernel's receptive field)")
        elif f.name == "padding":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise SpecError(path, value, "a non-negative integer, or null for 'same' padding")
        elif f.type in ("bool",) and not isinstance(value, bool):
            raise SpecError(path, value, "true or false")
    block.check(where)


def _check_spec_fields(spec: Spec) -> None:
    _check_positive_int("resolution", spec.resolution, "a positive image side in pixels")
    _check_positive_int("num_classes", spec.num_classes)
    _check_positive_int("in_channels", spec.in_channels)
    _check_positive_int("channel_divisor", spec.channel_divisor)
    for name in ("width_multiplier", "depth_multiplier"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 16:
            raise SpecError(name, value, "a number in (0, 16]")
    if isinstance(spec.drop_path, bool) or not isinstance(spec.drop_path, (int, float)) or not 0 <= spec.drop_path < 1:
        raise SpecError("drop_path", spec.drop_path, "a number in [0, 1)")
    if not spec.stages:
        raise SpecError("stages", [], "a non-empty list of stages")
    for i, block in enumerate(spec.stem):
        _check_block_fields(block, f"stem[{i}]")
    for i, stage in enumerate(spec.stages):
        _check_block_fields(stage.block, f"stages[{i}]")
        _check_positive_int(f"stages[{i}].repeats", stage.repeats, "a positive integer")
    head = spec.head
    if head.kind not in HEAD_KINDS:
        raise SpecError("head.kind", head.kind, "one of " + ", ".join(HEAD_KINDS))
    if isinstance(head.channels, bool) or not isinstance(head.channels, int) or head.channels < 0:
        raise SpecError("head.channels", head.channels, "a non-negative number of channels (0 = no head conv)")
    if head.kind == "pool_conv_linear" and head.channels == 0:
        raise SpecError("head.channels", 0, "a positive number of channels for head kind pool_conv_linear")
    if head.activation not in ACTIVATIONS:
        raise SpecError("head.activation", head.activation, "one of " + ", ".join(ACTIVATIONS))
    if isinstance(head.dropout, bool) or not isinstance(head.dropout, (int, float)) or not 0 <= head.dropout < 1:
        raise SpecError("head.dropout", head.dropout, "a number in [0, 1)")


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
        k = block.branches
        produced = cout - cin if block.stride == 2 else cout
        if block.stride == 2 and produced <= 0:
            raise SpecError(f"{where}.out_channels", cout, f"more than the {cin} input channels (a strided EESP concatenates its pooled input)")
        if produced % k:
            what = "out_channels - input channels" if block.stride == 2 else "out_channels"
            raise SpecError(f"{where}.out_channels", cout, f"a value whose {what} is a multiple of branches={k}")
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
    if isinstance(block, (MBConv, Separable)):
        return block.skip and block.stride == 1 and cin == block.out_channels
    return False


@lru_cache(maxsize=1024)
def resolve(spec: Spec) -> Resolved:
    """Apply multipliers, expand repeats, track channels and sizes; raise SpecError if the layers don't chain."""
    _check_spec_fields(spec)
    width, div = spec.width_multiplier, spec.channel_divisor
    cin, (h, w) = spec.in_channels, (spec.resolution, spec.resolution)
    out: list[ResolvedBlock] = []
    planned: list[tuple[str, Block, int]] = []
    for i, block in enumerate(spec.stem):
        planned.append((f"stem[{i}]", _scaled_block(block, width, div), -1))
    for i, stage in enumerate(spec.stages):
        first = _scaled_block(stage.block, width, div)
        rest = replace(first, stride=1) if getattr(first, "stride", 1) != 1 else first
        n = stage_repeats(spec, stage)
        planned.extend((f"stages[{i}]", first if r == 0 else rest, i) for r in range(n))
    residual_total = 0
    chained = []
    for where, block, stage in planned:
        _check_chain(block, cin, where)
        oh, ow = block_out_size(block, h, w)
        if oh < 1 or ow < 1:
            raise SpecError("resolution", spec.resolution, f"a larger image: the feature map vanishes at {where}")
        residual = _has_residual(block, cin)
        residual_total += residual
        chained.append((block, cin, (h, w), (oh, ow), stage, residual))
        cin, h, w = block_out_channels(block, cin), oh, ow
    seen = 0
    for block, block_in, in_size, out_size, stage, residual in chained:
        rate = 0.0
        if residual and spec.drop_path > 0:
            rate = spec.drop_path * seen / max(1, residual_total)
            seen += 1
        out.append(ResolvedBlock(block, block_in, in_size, out_size, stage, rate))
    head = spec.head
    head_channels = head.channels
    if head_channels and head.scale_channels:
        head_channels = round_channels(head_channels, width, div)
    return Resolved(spec, tuple(out), cin, head_channels, (h, w))


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
    if not isinstance(data, dict):
        raise SpecError(where, data, "a mapping such as {block: mbconv, out_channels: 24, ...}")
    data = dict(data)
    kind = data.pop("block", None)
    if kind not in BLOCK_KINDS:
        raise SpecError(f"{where}.block", kind, "one of " + ", ".join(BLOCK_KINDS) + _did_you_mean(kind, BLOCK_KINDS))
    cls = BLOCK_KINDS[kind]
    repeats = data.pop("repeats", 1) if allow_repeats else 1
    allowed = [f.name for f in fields(cls)]
    for key in data:
        if key not in allowed:
            raise SpecError(f"{where}.{key}", data[key],
                            f"no such field for block {kind}; its fields are " + ", ".join(allowed) + _did_you_mean(key, allowed))
    if cls.channel_fields and "out_channels" in allowed and "out_channels" not in data:
        raise SpecError(f"{where}.out_channels", None, "a positive number of channels (required)")
    for name in cls.channel_fields:
        if name not in data:
            raise SpecError(f"{where}.{name}", None, "a positive number of channels (required)")
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
    """Validate a plain dict (from YAML) into a Spec; raise SpecError naming the first bad field."""
    if not isinstance(data, dict):
        raise SpecError(source, type(data).__name__, "a mapping with keys " + ", ".join(_SPEC_KEYS))
    for key in data:
        if key not in _SPEC_KEYS:
            raise SpecError(str(key), data[key], "a spec key: " + ", ".join(_SPEC_KEYS) + _did_you_mean(key, _SPEC_KEYS))
    if "stages" not in data or not isinstance(data["stages"], list) or not data["stages"]:
        raise SpecError("stages", data.get("stages"), "a non-empty list of stages")
    stem_data = data.get("stem", []) or []
    if not isinstance(stem_data, list):
        raise SpecError("stem", stem_data, "a list of blocks")
    stem = tuple(_block_from_dict(b, f"stem[{i}]", False)[0] for i, b in enumerate(stem_data))
    stages = []
    for i, item in enumerate(data["stages"]):
        block, repeats = _block_from_dict(item, f"stages[{i}]", True)
        _check_positive_int(f"stages[{i}].repeats", repeats, "a positive integer")
        stages.append(Stage(block, repeats))
    head_data = data.get("head", {}) or {}
    if not isinstance(head_data, dict):
        raise SpecError("head", head_data, "a mapping with keys " + ", ".join(f.name for f in fields(Head)))
    head_keys = [f.name for f in fields(Head)]
    for key in head_data:
        if key not in head_keys:
            raise SpecError(f"head.{key}", head_data[key], "one of " + ", ".join(head_keys) + _did_you_mean(key, head_keys))
    scalars = {k: data[k] for k in _SPEC_SCALARS if k in data}
    scalars.setdefault("name", "unnamed")
    if not isinstance(scalars["name"], str):
        raise SpecError("name", scalars["name"], "a string")
    spec = Spec(stem=stem, stages=tuple(stages), head=Head(**head_data), **scalars)
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
    try:
        return from_dict(data, source)
    except TypeError as exc:  # a wrong-typed value that the dataclass constructor rejected
        raise SpecError(source, str(exc), "fields of the documented types") from None


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
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise SpecError("spec", str(path), f"a readable YAML text file ({type(exc).__name__})") from None
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
