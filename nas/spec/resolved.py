"""Resolution: multipliers applied, repeats expanded, layers chained, drop-path rates set.

Both the cost model and the torch builder consume the resolved form, so they can never disagree
about what the architecture is. What each block does to its input is the block kind's to say
(:mod:`nas.spec.kinds`); this module only walks the network.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from ..errors import SpecError
from .geometry import round_channels, round_repeats
from .kinds import Block
from .schema import Spec
from .validation import check_block_fields, check_spec_fields


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


@lru_cache(maxsize=4096)
def _scaled_block(block: Block, width: float, divisor: int) -> Block:
    if width == 1.0 and all(getattr(block, n) % divisor == 0 for n in block.channel_fields):
        return block
    return replace(block, **{n: round_channels(getattr(block, n), width, divisor) for n in block.channel_fields})


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
    check_block_fields(block, where)
    first = _scaled_block(block, width, divisor)
    # only the first repeat strides; every kind with a stride other than 1 has the field
    rest = replace(first, stride=1) if getattr(first, "stride", 1) != 1 else first  # type: ignore[call-arg]
    n = round_repeats(repeats, depth) if block.scales_with_depth else repeats
    rows = []
    for r in range(n):
        b = first if r == 0 else rest
        b.check(where, cin)
        oh, ow = b.output_size(h, w)
        rows.append((ResolvedBlock(b, cin, (h, w), (oh, ow), index), b.has_residual(cin)))
        cin, h, w = b.output_channels(cin), oh, ow
        if h < 1 or w < 1:
            break
    return tuple(rows), cin, (h, w)


@lru_cache(maxsize=1024)
def resolve(spec: Spec) -> Resolved:
    """Apply multipliers, expand repeats, track channels and sizes; raise SpecError if the layers don't chain."""
    check_spec_fields(spec)
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
        block.check_image(where, spec.in_channels)
        chained += rows
    blocks = _with_drop_path(chained, spec.drop_path)
    head_channels = spec.head.channels
    if head_channels and spec.head.scale_channels:
        head_channels = round_channels(head_channels, width, div)
    return Resolved(spec, blocks, cin, head_channels, size)


def _with_drop_path(chained: list[tuple[ResolvedBlock, bool]], drop_path: float) -> tuple[ResolvedBlock, ...]:
    """Stochastic depth grows linearly over the residual blocks of the whole network (EfficientNet)."""
    out = [rb for rb, _ in chained]
    if drop_path > 0:
        residual_at = [i for i, (_, residual) in enumerate(chained) if residual]
        for seen, i in enumerate(residual_at):
            rb = out[i]  # built directly: dataclasses.replace is slow, and this runs for every new spec
            out[i] = ResolvedBlock(rb.block, rb.in_channels, rb.in_size, rb.out_size, rb.stage,
                                   drop_path * seen / len(residual_at))
    return tuple(out)
