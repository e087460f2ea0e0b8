"""The arithmetic every layer shares: EfficientNet's rounding and the output side of a window."""

from __future__ import annotations

import math


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


def same_padding_out(h: int, w: int, stride: int) -> tuple[int, int]:
    """Output size of an odd-kernel conv with 'same' padding ((kernel - 1) / 2) at ``stride``."""
    if stride == 1:
        return h, w
    return (h - 1) // stride + 1, (w - 1) // stride + 1


def ceil_max_pool_out(h: int, w: int) -> tuple[int, int]:
    """Output size of the 3x3 / 2 max-pool in ceil mode that VoVNet and SqueezeNet put in front of a strided block."""
    return conv_out(h, 3, 2, 0, 1, True), conv_out(w, 3, 2, 0, 1, True)
