"""Type and range checks of a spec's fields; one :class:`SpecError` line naming the first bad one.

Block fields are checked by name (a ``kernel`` is an odd integer wherever it appears), so a new kind
reusing these names gets their rules for free; fields without a rule here are checked by type. Checks
that need a block's input channels live with its kind (``Block.check``) and run in :func:`resolve`.
"""

from __future__ import annotations

import math
from dataclasses import fields

from ..errors import SpecError
from .kinds import Block
from .schema import HEAD_KINDS, Head, Spec, Stage

ACTIVATIONS = ("relu", "relu6", "swish", "hswish", "prelu", "sigmoid", "none")
MAX_KERNEL = 11
# Upper limits. They are far above any published network; they exist so that a typo such as
# ``repeats: 1e9`` or ``out_channels: 10**400`` gives a one-line error instead of a hang or an overflow.
MAX_CHANNELS = 65536
MAX_REPEATS = 100       # per stage, before the depth multiplier
MAX_LAYERS = 64         # OSA layers, EESP branches: loops inside one block
MAX_DIVISOR = 256


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An int or a finite float (math.isfinite would overflow on a huge int, which is finite anyway)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return is_int(value)


def check_positive_int(where: str, value, allowed: str = "a positive integer", maximum: int | None = None) -> None:
    """``allowed`` should state ``maximum`` when one is given."""
    if not is_int(value) or value < 1 or (maximum is not None and value > maximum):
        raise SpecError(where, value, allowed)


def check_repeats(where: str, value) -> None:
    check_positive_int(where, value, f"a positive integer up to {MAX_REPEATS}", MAX_REPEATS)


def check_block_fields(block: Block, where: str) -> None:
    """Type and range of every field of ``block``, by name; fields without a rule here are checked by type."""
    for f in fields(block):
        value = getattr(block, f.name)
        path = f"{where}.{f.name}"
        if f.name in block.channel_fields:
            check_positive_int(path, value, f"a positive number of channels up to {MAX_CHANNELS}", MAX_CHANNELS)
        elif f.name == "kernel":
            if not is_int(value) or not 1 <= value <= MAX_KERNEL or value % 2 == 0:
                raise SpecError(path, value, f"an odd integer from 1 to {MAX_KERNEL}")
        elif f.name == "stride":
            if not is_int(value) or value not in (1, 2):
                raise SpecError(path, value, "1 or 2")
        elif f.name == "activation":
            _check_activation(path, value)
        elif f.name == "se_ratio":
            if not is_number(value) or not 0 <= value <= 1:
                raise SpecError(path, value, "a number from 0 to 1 (relative to the block's input channels)")
        elif f.name == "expansion":
            if not is_number(value) or not 1 <= value <= 16:
                raise SpecError(path, value, "a number from 1 to 16")
        elif f.name in ("layers", "branches"):
            check_positive_int(path, value, f"a positive integer up to {MAX_LAYERS}", MAX_LAYERS)
        elif f.name == "groups":
            check_positive_int(path, value, f"a positive integer up to {MAX_CHANNELS}", MAX_CHANNELS)
        elif f.name == "receptive_limit":
            if not is_int(value) or not 3 <= value <= 17 or value % 2 == 0:
                raise SpecError(path, value, "an odd integer from 3 to 17 (a 3x3 kernel's receptive field)")
        elif f.name == "padding":
            _check_padding(path, value, getattr(block, "kernel", 1), may_be_null=f.default is None)
        else:
            _check_type(path, value, f.type)


def _check_activation(path: str, value) -> None:
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise SpecError(path, value, "one of " + ", ".join(ACTIVATIONS))


def _check_padding(path: str, value, kernel: int, may_be_null: bool) -> None:
    # torch's pooling refuses more than half the kernel, and more would grow a conv's map: same rule for both
    if value is None and may_be_null:
        return
    null = ", or null for 'same' padding" if may_be_null else ""
    if not is_int(value) or not 0 <= value <= kernel // 2:
        raise SpecError(path, value, f"an integer from 0 to {kernel // 2} (half the kernel {kernel}){null}")


_TYPE_RULES = {"bool": (lambda v: isinstance(v, bool), "true or false"), "int": (is_int, "an integer"),
               "float": (is_number, "a number"), "str": (lambda v: isinstance(v, str), "a string")}


def _check_type(path: str, value, type_name) -> None:
    rule = _TYPE_RULES.get(type_name)
    if rule is not None and not rule[0](value):
        raise SpecError(path, value, rule[1])


def check_spec_fields(spec: Spec) -> None:
    """The spec's own fields, its stages' repeats and its head. The blocks' fields are checked when read
    from YAML and by :func:`nas.spec.resolve` (once per block, cached) for specs made in Python."""
    if not isinstance(spec.name, str):
        raise SpecError("name", spec.name, "a string")
    if not isinstance(spec.notes, str):
        raise SpecError("notes", spec.notes, "a string")
    check_positive_int("resolution", spec.resolution, "a positive image side in pixels")
    check_positive_int("num_classes", spec.num_classes)
    check_positive_int("in_channels", spec.in_channels, f"a positive number of channels up to {MAX_CHANNELS}",
                       MAX_CHANNELS)
    check_positive_int("channel_divisor", spec.channel_divisor, f"a positive integer up to {MAX_DIVISOR}",
                       MAX_DIVISOR)
    for name in ("width_multiplier", "depth_multiplier"):
        value = getattr(spec, name)
        if not is_number(value) or not 0 < value <= 16:
            raise SpecError(name, value, "a number in (0, 16]")
    if not is_number(spec.drop_path) or not 0 <= spec.drop_path < 1:
        raise SpecError("drop_path", spec.drop_path, "a number in [0, 1)")
    _check_batch_norm(spec)
    _check_layers(spec)
    _check_head(spec.head)


def _check_batch_norm(spec: Spec) -> None:
    eps, momentum = spec.batch_norm_eps, spec.batch_norm_momentum
    if not is_number(eps) or not 0 < eps < 1:
        raise SpecError("batch_norm_eps", eps, "a number in (0, 1), e.g. 1e-5 (PyTorch) or 1e-3 (TensorFlow)")
    if not is_number(momentum) or not 0 < momentum <= 1:
        raise SpecError("batch_norm_momentum", momentum,
                        "a number in (0, 1], PyTorch's convention: 0.1 (PyTorch), 0.01 (TensorFlow's decay 0.99)")


def _check_layers(spec: Spec) -> None:
    if not spec.stages:
        raise SpecError("stages", [], "a non-empty list of stages")
    for i, block in enumerate(spec.stem):
        if not isinstance(block, Block):
            raise SpecError(f"stem[{i}]", block, "a block (nas.spec.Conv, MaxPool, ...)")
    for i, stage in enumerate(spec.stages):
        if not isinstance(stage, Stage) or not isinstance(stage.block, Block):
            raise SpecError(f"stages[{i}]", stage, "a Stage(block, repeats)")
        check_repeats(f"stages[{i}].repeats", stage.repeats)


def _check_head(head: Head) -> None:
    if not isinstance(head, Head):
        raise SpecError("head", head, "a Head")
    if not isinstance(head.kind, str) or head.kind not in HEAD_KINDS:
        raise SpecError("head.kind", head.kind, "one of " + ", ".join(HEAD_KINDS))
    if not is_int(head.channels) or not 0 <= head.channels <= MAX_CHANNELS:
        raise SpecError("head.channels", head.channels,
                        f"a number of channels from 0 to {MAX_CHANNELS} (0 = no head conv)")
    if head.kind == "pool_conv_linear" and head.channels == 0:
        raise SpecError("head.channels", 0, "a positive number of channels for head kind pool_conv_linear")
    _check_activation("head.activation", head.activation)
    if not is_number(head.dropout) or not 0 <= head.dropout < 1:
        raise SpecError("head.dropout", head.dropout, "a number in [0, 1)")
    if not isinstance(head.scale_channels, bool):
        raise SpecError("head.scale_channels", head.scale_channels, "true or false")
