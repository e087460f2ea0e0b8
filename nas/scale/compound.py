"""Compound scaling's math: coefficients, phi, one spec scaled, the EfficientNet preset, the alpha-beta-gamma grid."""

from __future__ import annotations

import math
import re
from dataclasses import replace

from ..errors import UserError
from ..spec import Spec, resolve

#: Resolutions of a compound-scaled spec are rounded to the nearest multiple of this...
RESOLUTION_DIVISOR = 8
#: ...when the base has at least this many pixels; smaller (proxy-sized) bases round to whole pixels.
SMALL_BASE_RESOLUTION = 100
#: The largest phi ``parse_phi`` accepts. With alpha = 1.2, phi = 16 already asks for depth x18.5.
MAX_PHI = 16
#: Multipliers are stored to this many decimals, so the YAML reads 1.21 rather than 1.2100000000000002
#: and round_repeats' ceiling never rounds float noise up to one more block.
MULTIPLIER_DECIMALS = 6

# tensorflow/tpu models/official/efficientnet/efficientnet_builder.py, efficientnet_params():
# phi: (width coefficient, depth coefficient, resolution, dropout rate)
EFFICIENTNET_PRESET: dict[int, tuple[float, float, int, float]] = {
    0: (1.0, 1.0, 224, 0.2),
    1: (1.0, 1.1, 240, 0.2),
    2: (1.1, 1.2, 260, 0.3),
    3: (1.2, 1.4, 300, 0.3),
    4: (1.4, 1.8, 380, 0.4),
    5: (1.6, 2.2, 456, 0.4),
    6: (1.8, 2.6, 528, 0.5),
    7: (2.0, 3.1, 600, 0.5),
}
#: The resolution the preset's resolutions are relative to (B0's).
PRESET_BASE_RESOLUTION = 224

#: The coefficients the EfficientNet paper found by grid search on B0.
EFFICIENTNET_COEFFICIENTS = (1.2, 1.1, 1.15)


# --------------------------------------------------------------------------------------------
# Checking what the user gave
# --------------------------------------------------------------------------------------------

def check_coefficients(alpha, beta, gamma) -> tuple[float, float, float]:
    """Return (alpha, beta, gamma) as floats; raise UserError unless each is a finite number >= 1.

    Compound scaling only grows the base: a coefficient below 1 would shrink that dimension as phi grows.
    """
    checked = []
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        number = _as_number(value)
        if not math.isfinite(number) or number < 1:
            raise UserError(f"{name}: got {value!r}; allowed: a number >= 1 (compound scaling only grows the base)")
        checked.append(number)
    return tuple(checked)


def _as_number(value) -> float:
    """``value`` as a float, or NaN when it is not a number (booleans included), for the range checks."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _check_multiplier(name: str, value) -> float:
    """A single-dimension multiplier: any finite positive number (MobileNet's alpha and rho may shrink)."""
    number = _as_number(value)
    if not math.isfinite(number) or number <= 0:
        raise UserError(f"{name}: got {value!r}; allowed: a positive number such as 0.5, 1.0 or 1.4")
    return number


def _check_phi(phi) -> int:
    if isinstance(phi, bool) or not isinstance(phi, int) or phi < 0:
        raise UserError(f"phi: got {phi!r}; allowed: a non-negative integer (0 is the base itself)")
    return phi


_PHI_ALLOWED = f"an integer from 1 to {MAX_PHI}, a range such as 1..7, or a list such as 1,3,5"


def parse_phi(text) -> list[int]:
    """``"1..7"`` -> [1, ..., 7]; ``"1,3,5"`` -> [1, 3, 5]; ``"4"`` -> [4]. Sorted, without repeats.

    A range must go upwards (``7..1`` is refused rather than silently reversed); every phi is an
    integer from 1 to :data:`MAX_PHI`. Anything else raises UserError with one line.
    """
    def fail() -> UserError:
        return UserError(f"phi: got {text!r}; allowed: {_PHI_ALLOWED}")

    if isinstance(text, bool):
        raise fail()
    if isinstance(text, int):
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        raise fail()
    range_match = re.fullmatch(r"\s*(\d+)\s*\.\.\s*(\d+)\s*", text)
    if range_match:
        first, last = int(range_match.group(1)), int(range_match.group(2))
        if last < first:
            raise UserError(f"phi: got {text!r} (the range runs backwards); allowed: {_PHI_ALLOWED}")
        values = list(range(first, last + 1))
    else:
        parts = [part.strip() for part in text.split(",")]
        if not all(re.fullmatch(r"\d+", part) for part in parts):
            raise fail()
        values = [int(part) for part in parts]
    if any(value < 1 or value > MAX_PHI for value in values):
        raise fail()
    return sorted(set(values))


# --------------------------------------------------------------------------------------------
# Scaling one spec
# --------------------------------------------------------------------------------------------

def round_resolution(side: float, divisor: int = RESOLUTION_DIVISOR) -> int:
    """The nearest multiple of ``divisor`` (halves round up), at least ``divisor``.

    Our rule, documented because EfficientNet's published resolutions (240, 260, 300, 380, 456, 528, 600)
    were picked by hand: a multiple of 8 keeps every stride-2 stage of a 224-pixel network on whole
    pixels for three halvings and is within 4 pixels (under 2 % at 224) of the exact value.
    :func:`default_resolution_divisor` picks 1 (plain rounding) for small bases instead.
    """
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise UserError(f"resolution divisor: got {divisor!r}; allowed: a positive integer such as 8")
    return max(divisor, int(math.floor(side / divisor + 0.5)) * divisor)


def default_resolution_divisor(base_resolution: int) -> int:
    """:data:`RESOLUTION_DIVISOR` for a base of :data:`SMALL_BASE_RESOLUTION` pixels or more, else 1.

    From 100 pixels up, a multiple of 8 is within 4 % of the exact side. Below, 8 pixels is a coarse step:
    a 16-pixel base would stay at 16 for every gamma^phi under 1.25 and then jump to 24 (x1.5), so small
    bases, such as proxy-sized ones on the 8x8 digits, round to whole pixels.
    """
    return RESOLUTION_DIVISOR if base_resolution >= SMALL_BASE_RESOLUTION else 1


def _multiplier(value: float) -> float:
    return round(value, MULTIPLIER_DECIMALS)


def _checked(spec: Spec) -> Spec:
    """Resolve now, so a multiplier the spec cannot take fails at scaling time with the field named."""
    resolve(spec)
    return spec


def scale_spec(base: Spec, alpha: float, beta: float, gamma: float, phi: int,
               resolution_divisor: int | None = None) -> Spec:
    """``base`` compound-scaled: depth x alpha**phi, width x beta**phi, resolution x gamma**phi.

    The multipliers compose with the base's own; the resolution is rounded to a multiple of
    ``resolution_divisor`` (default: :func:`default_resolution_divisor` of the base's). The head's dropout
    and the drop-path rate are kept (EfficientNet raises dropout with size by hand; :func:`apply_preset`
    does that). Named ``<base>-phi<k>``.
    """
    alpha, beta, gamma = check_coefficients(alpha, beta, gamma)
    phi = _check_phi(phi)
    resolution_divisor = resolution_divisor or default_resolution_divisor(base.resolution)
    depth = _multiplier(base.depth_multiplier * alpha ** phi)
    width = _multiplier(base.width_multiplier * beta ** phi)
    resolution = round_resolution(base.resolution * gamma ** phi, resolution_divisor)
    notes = (f"{base.name} compound-scaled (EfficientNet, Tan & Le 2019): alpha={alpha:g}, beta={beta:g}, "
             f"gamma={gamma:g}, phi={phi}; depth x{alpha ** phi:.4g}, width x{beta ** phi:.4g}, "
             f"resolution {base.resolution} -> {resolution} (nearest multiple of {resolution_divisor}).")
    return _checked(replace(base, name=f"{base.name}-phi{phi}", depth_multiplier=depth, width_multiplier=width,
                            resolution=resolution, notes=notes))


def scale_width(base: Spec, multiplier: float) -> Spec:
    """Width only (MobileNet's width multiplier alpha): channels x ``multiplier``, EfficientNet-rounded."""
    multiplier = _check_multiplier("width multiplier", multiplier)
    notes = f"{base.name} with width x{multiplier:g} only."
    return _checked(replace(base, name=f"{base.name}-w{multiplier:g}", notes=notes,
                            width_multiplier=_multiplier(base.width_multiplier * multiplier)))


def scale_depth(base: Spec, multiplier: float) -> Spec:
    """Depth only: every stage's repeats x ``multiplier``, rounded up."""
    multiplier = _check_multiplier("depth multiplier", multiplier)
    notes = f"{base.name} with depth x{multiplier:g} only."
    return _checked(replace(base, name=f"{base.name}-d{multiplier:g}", notes=notes,
                            depth_multiplier=_multiplier(base.depth_multiplier * multiplier)))


def scale_resolution(base: Spec, multiplier: float, resolution_divisor: int | None = None) -> Spec:
    """Resolution only (MobileNet's resolution multiplier rho), rounded as in :func:`scale_spec`."""
    multiplier = _check_multiplier("resolution multiplier", multiplier)
    resolution_divisor = resolution_divisor or default_resolution_divisor(base.resolution)
    resolution = round_resolution(base.resolution * multiplier, resolution_divisor)
    notes = f"{base.name} with resolution x{multiplier:g} only ({base.resolution} -> {resolution})."
    return _checked(replace(base, name=f"{base.name}-r{multiplier:g}", resolution=resolution, notes=notes))


def apply_preset(base: Spec, phi: int) -> Spec:
    """``base`` scaled with EfficientNet-B<phi>'s official coefficients (:data:`EFFICIENTNET_PRESET`).

    Width and depth coefficients multiply the base's multipliers; the resolution is the preset's,
    scaled by base.resolution / 224 (so a 224-pixel base gets exactly 240, 260, ...); the head's dropout
    is the preset's. On the zoo's efficientnet-b0 this gives the zoo's efficientnet-b<phi> exactly.
    Named ``<family>-b<phi>`` when the base's name ends in ``-b0``, else ``<base>-b<phi>``.
    """
    if isinstance(phi, bool) or phi not in EFFICIENTNET_PRESET:
        raise UserError(f"preset phi: got {phi!r}; allowed: an integer from 0 to {max(EFFICIENTNET_PRESET)} "
                        "(EfficientNet-B0 to B7)")
    width, depth, side, dropout = EFFICIENTNET_PRESET[phi]
    resolution = round(base.resolution * side / PRESET_BASE_RESOLUTION)
    stem_name = base.name[:-3] if base.name.endswith("-b0") else base.name
    notes = (f"{base.name} scaled with EfficientNet-B{phi}'s coefficients from tensorflow/tpu efficientnet_builder "
             f"(width {width}, depth {depth}, resolution {side}, dropout {dropout}).")
    return _checked(replace(base, name=f"{stem_name}-b{phi}", notes=notes,
                            width_multiplier=_multiplier(base.width_multiplier * width),
                            depth_multiplier=_multiplier(base.depth_multiplier * depth),
                            resolution=resolution, head=replace(base.head, dropout=dropout)))


# --------------------------------------------------------------------------------------------
# The alpha, beta, gamma grid
# --------------------------------------------------------------------------------------------

#: Values per coefficient the grid may have: 100**3 products to check take about a second.
MAX_GRID_VALUES = 100


def grid_candidates(step: float = 0.05, target: float = 2.0, tolerance: float = 0.1, max_value: float = 1.3,
                    max_candidates: int | None = None) -> list[tuple[float, float, float]]:
    """Every (alpha, beta, gamma) on a grid 1, 1+step, ..., max_value with |alpha*beta^2*gamma^2 - target| <= tolerance.

    Sorted by alpha, then beta, then gamma. The defaults give 53 candidates, the paper's (1.2, 1.1, 1.15)
    among them (its product is 1.92, so a tolerance of 0.05 would miss it). ``max_value`` 1.3 leaves out
    near-single-dimension scaling (at phi = 1 a factor of 1.3 in width or resolution is already 1.69 of
    the 2x FLOPs); compare single dimensions with scale_width / scale_depth / scale_resolution instead.
    ``max_candidates`` keeps an even spread over the sorted list (first and last included), not the first N.
    """
    for name, value, low in (("step", step, 0.0), ("target", target, 1.0), ("tolerance", tolerance, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low \
                or (name == "step" and value == 0):
            raise UserError(f"grid {name}: got {value!r}; allowed: a number {'>' if name == 'step' else '>='} {low:g}")
    if isinstance(max_value, bool) or not isinstance(max_value, (int, float)) or not 1 <= max_value <= 4:
        raise UserError(f"grid max_value: got {max_value!r}; allowed: a number from 1 to 4")
    # Grid values are computed from integer steps and rounded, so 1.15 is 1.15 and not 1.1500000000000001.
    count = int(math.floor((max_value - 1) / step + 1e-9)) + 1
    if count > MAX_GRID_VALUES:  # the search below is cubic in count: step=1e-9 would never finish
        raise UserError(f"grid step: got {step!r}, {count:,} values from 1 to {max_value:g} per coefficient; allowed: "
                        f"at most {MAX_GRID_VALUES} values, a step >= {(max_value - 1) / (MAX_GRID_VALUES - 1):.4g}")
    values = [round(1 + i * step, 9) for i in range(count)]
    low, high = target - tolerance - 1e-9, target + tolerance + 1e-9
    found = []
    for alpha in values:
        for beta in values:
            for gamma in values:
                product = alpha * beta * beta * gamma * gamma
                if product > high:
                    break  # the product only grows with gamma
                if product >= low:
                    found.append((alpha, beta, gamma))
    return spread(found, max_candidates)


def spread(items: list, max_count: int | None) -> list:
    """At most ``max_count`` items taken at evenly spaced positions (the first and the last included)."""
    if max_count is None:
        return list(items)
    if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1:
        raise UserError(f"max_candidates: got {max_count!r}; allowed: a positive integer")
    if len(items) <= max_count:
        return list(items)
    if max_count == 1:
        return [items[(len(items) - 1) // 2]]
    last = len(items) - 1
    return [items[round(i * last / (max_count - 1))] for i in range(max_count)]


def constraint_product(alpha: float, beta: float, gamma: float) -> float:
    """alpha * beta^2 * gamma^2: how much one step of phi multiplies the FLOPs, ideally."""
    return alpha * beta ** 2 * gamma ** 2


def best_result(results: list[dict]) -> dict | None:
    """The grid result with the highest accuracy; ties go to fewer FLOPs, then to the smaller (alpha, beta, gamma).

    Results without a finite accuracy (failed, pruned, still running) are ignored; None if none is left.
    """
    usable = [r for r in results if is_finite_number(r.get("accuracy"))]
    if not usable:
        return None
    return min(usable, key=lambda r: (-float(r["accuracy"]), r.get("flops") or 0, r["alpha"], r["beta"], r["gamma"]))


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
