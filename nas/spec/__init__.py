"""Architecture specs: the one currency of nas.

Every architecture, found or scaled or taken from a paper, is a :class:`Spec`: plain frozen data that
the cost model counts and the builder turns into torch. The package imports no torch.

=================  =========================================================================
module             holds
=================  =========================================================================
``kinds/``         the block kinds, one module each: fields and rules (size, residual, cost tally)
``schema``         ``Stage``, ``Head``, ``Spec``
``validation``     field type and range checks (one ``SpecError`` line each)
``resolved``       ``resolve()``: multipliers applied, repeats expanded, layers chained
``yaml_io``        ``from_dict`` / ``to_dict`` / ``dumps`` / ``loads`` / ``load`` / ``save``, ``spec_hash``
``geometry``       EfficientNet's rounding, the output side of a window
=================  =========================================================================
"""

from __future__ import annotations

from dataclasses import fields, replace

from .geometry import conv_out, round_channels, round_repeats
from .kinds import (
    BLOCK_KINDS,
    EESP,
    OSA,
    Block,
    Conv,
    Fire,
    MaxPool,
    MBConv,
    Separable,
    Shuffle,
    eesp_dilations,
    se_channels,
)
from .resolved import Resolved, ResolvedBlock, resolve
from .schema import HEAD_KINDS, Head, Spec, Stage, with_overrides
from .validation import ACTIVATIONS, MAX_CHANNELS, MAX_KERNEL, MAX_REPEATS
from .yaml_io import dumps, from_dict, load, loads, save, spec_hash, to_dict

__all__ = [
    "ACTIVATIONS", "BLOCK_KINDS", "Block", "Conv", "MaxPool", "MBConv", "Separable", "OSA", "EESP", "Fire",
    "Shuffle", "Stage", "Head", "HEAD_KINDS", "Spec", "Resolved", "ResolvedBlock", "resolve", "round_channels",
    "round_repeats", "from_dict", "to_dict", "dumps", "loads", "load", "save", "spec_hash", "with_overrides",
    "conv_out", "eesp_dilations", "se_channels", "MAX_CHANNELS", "MAX_KERNEL", "MAX_REPEATS", "fields", "replace",
]
