"""The value parsers of the settings: each checks one typed value (from the command line, an experiment
file or a stored config.yaml) and says what it allows, in the same words in its error line, in --help and
in the README's key table. ``parse(key, value)`` returns the value or raises one UserError line."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..units import human, parse_count, parse_milliseconds

#: The zero-cost proxies nas.evaluate.zero_cost can score (kept here so checking a setting needs no torch;
#: a test checks that zero_cost scores exactly these).
ZERO_COST_PROXIES = ("synflow", "naswot", "grad_norm", "params", "flops")


def _fail(key: str, value, allowed: str):
    raise UserError(f"{key}: got {value!r}; allowed: {allowed}")


@dataclass(frozen=True)
class Integer:
    low: int

    @property
    def allowed(self) -> str:
        return f"an integer >= {self.low}"

    def __call__(self, key: str, value) -> int:
        try:
            number = None if isinstance(value, bool) else int(str(value))
        except ValueError:
            number = None
        if number is None or number < self.low:
            _fail(key, value, self.allowed)
        return number

    def show(self, value) -> str:
        return str(value)


@dataclass(frozen=True)
class Number:
    low: float | None = None
    high: float | None = None
    above_low: bool = False      # True: low itself is not allowed
    below_high: bool = False     # True: high itself is not allowed

    @property
    def allowed(self) -> str:
        if self.high is None and self.low is not None:
            return f"a number {'>' if self.above_low else '>='} {self.low:g}"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"a number in {'(' if self.above_low else '['}{low}, {high}{')' if self.below_high else ']'}"

    def __call__(self, key: str, value) -> float:
        try:
            number = None if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or math.isnan(number) or not self._within(number):
            _fail(key, value, self.allowed)
        return number

    def _within(self, number: float) -> bool:
        above = self.low is None or (number > self.low if self.above_low else number >= self.low)
        below = self.high is None or (number < self.high if self.below_high else number <= self.high)
        return above and below

    def show(self, value) -> str:
        return f"{value:g}"


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    @property
    def allowed(self) -> str:
        return ", ".join(self.options)

    def __call__(self, key: str, value) -> str:
        if str(value) not in self.options:
            _fail(key, value, self.allowed)
        return str(value)

    def show(self, value) -> str:
        return str(value)


@dataclass(frozen=True)
class Flag:
    allowed = "true, false"

    def __call__(self, key: str, value) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            _fail(key, value, self.allowed)
        return text in ("true", "1", "yes")

    def show(self, value) -> str:
        return str(value).lower()


@dataclass(frozen=True)
class Text:
    """Any text here; what it may be is checked where it is used (a space by nas.space, a data set by the loader)."""
    allowed: str

    def __call__(self, key: str, value) -> str:
        return str(value)

    def show(self, value) -> str:
        return str(value)


@dataclass(frozen=True)
class Count:
    allowed = "a positive count: 400M, 1.2G, 4e8"

    def __call__(self, key: str, value) -> float:
        return parse_count(value, key)

    def show(self, value) -> str:
        return human(value)


@dataclass(frozen=True)
class Target:
    """A number in the objective's unit: 20ms (latency), 3M (params), 0.05 or 0.05J (energy)."""
    allowed = "a positive number in the objective's unit: 20ms, 3M, 0.05J"

    def __call__(self, key: str, value) -> float:
        text = str(value).strip()
        if text.endswith("s"):
            return parse_milliseconds(text, key)
        return parse_count(text.removesuffix("J"), key)

    def show(self, value) -> str:
        return f"{value:g}"


@dataclass(frozen=True)
class Evaluator:
    allowed = "train, hybrid, " + ", ".join(f"zero_cost:{name}" for name in ZERO_COST_PROXIES)

    def __call__(self, key: str, value) -> str:
        text = str(value)
        if text in ("train", "hybrid") or (text.startswith("zero_cost:") and text[10:] in ZERO_COST_PROXIES):
            return text
        _fail(key, value, self.allowed)

    def show(self, value) -> str:
        return str(value)


@dataclass(frozen=True)
class OrNone:
    """The inner parser's values, or none (empty, none, None)."""
    inner: Any

    @property
    def allowed(self) -> str:
        return f"{self.inner.allowed}; or none"

    def __call__(self, key: str, value):
        return None if value in (None, "", "none", "None") else self.inner(key, value)

    def show(self, value) -> str:
        return "none" if value is None else self.inner.show(value)
