"""Numbers with units as users type them: ``400M``, ``1.2G``, ``4e8``, ``20ms``, ``0.5J``."""

from __future__ import annotations

import math
import re

from .errors import UserError

_SCALE = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_TIME = {"s": 1e3, "ms": 1.0, "us": 1e-3}  # durations are returned in milliseconds
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_count(text, field: str) -> float:
    """A positive count such as FLOPs or params: ``400M``, ``1.2G``, ``4e8``, ``5000``."""
    value, suffix = _split(text, field, "a positive number such as 400M, 1.2G or 4e8")
    if suffix not in _SCALE:
        raise UserError(f"{field}: got {text!r}; allowed: a positive number with an optional suffix k, M, G or T "
                        "(400M, 1.2G, 4e8)")
    return value * _SCALE[suffix]


def parse_milliseconds(text, field: str) -> float:
    """A positive duration in milliseconds: ``20ms``, ``0.02s``, ``20`` (milliseconds)."""
    value, suffix = _split(text, field, "a positive duration such as 20ms or 0.02s")
    if suffix not in _TIME and suffix != "":
        raise UserError(f"{field}: got {text!r}; allowed: a positive duration such as 20ms, 0.02s or 500us")
    return value * _TIME.get(suffix, 1.0)


def _split(text, field: str, allowed: str) -> tuple[float, str]:
    if isinstance(text, bool):
        raise UserError(f"{field}: got {text!r}; allowed: {allowed}")
    if isinstance(text, (int, float)):
        value, suffix = float(text), ""
    else:
        match = _NUMBER.match(str(text))
        if not match:
            raise UserError(f"{field}: got {text!r}; allowed: {allowed}")
        value, suffix = float(match.group(1)), match.group(2)
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{field}: got {text!r}; allowed: {allowed}")
    return value, suffix


def human(count: float) -> str:
    """398765432 -> '398.8M'."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.1f}{suffix}" if count / scale < 100 else f"{count / scale:.0f}{suffix}"
    return f"{count:.0f}"
