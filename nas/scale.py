"""Compound scaling (EfficientNet, Tan & Le 2019): grow a base spec into a family.

EfficientNet scales a base network in three dimensions at once with one knob, the compound
coefficient phi::

    depth multiplier       alpha ** phi
    width multiplier       beta  ** phi
    resolution multiplier  gamma ** phi      subject to  alpha * beta**2 * gamma**2 ~ 2,  alpha, beta, gamma >= 1

FLOPs grow roughly as depth * width**2 * resolution**2, so each step of phi roughly doubles the FLOPs
(multiply-adds). alpha, beta and gamma are found once, by a small grid search at phi = 1
(:func:`grid_candidates`; the search itself lives in the search backend), and then reused for every phi.

Rounding: channel counts are rounded by :func:`nas.spec.resolve` (EfficientNet's round_filters: multiples
of 8, never below 90 %), repeats are rounded up per stage there too (round_repeats), the stem scales with
the width multiplier and the head does when its ``scale_channels`` flag says so. This module only sets the
multipliers and the resolution. The resolution rule is ours, see :func:`round_resolution` and
:func:`default_resolution_divisor`.

The official B1..B7 were not produced by this formula: their (width, depth, resolution) were rounded by
hand (B7's depth is 3.1, while 1.2**7 = 3.58). :data:`EFFICIENTNET_PRESET` and :func:`apply_preset`
reproduce them exactly from B0.

This module imports no torch; matplotlib is imported only inside the plotting functions.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .cost import count_cost
from .errors import UserError
from .io import save_figure, write_text
from .spec import Spec, resolve, save
from .units import human

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
    usable = [r for r in results if _finite(r.get("accuracy"))]
    if not usable:
        return None
    return min(usable, key=lambda r: (-float(r["accuracy"]), r.get("flops") or 0, r["alpha"], r["beta"], r["gamma"]))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------------------------
# The family
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FamilyRow:
    """One member of a compound-scaled family and what it costs."""

    phi: int
    spec: Spec
    depth_multiplier: float
    width_multiplier: float
    resolution: int
    params: int
    flops: int               # multiply-adds
    flops_ratio: float       # flops / the base's flops
    expected_ratio: float    # (alpha * beta^2 * gamma^2) ** phi
    drift: float             # flops_ratio / expected_ratio - 1

    @property
    def name(self) -> str:
        return self.spec.name


def family(base: Spec, alpha: float, beta: float, gamma: float, phis, resolution_divisor: int | None = None
           ) -> list[FamilyRow]:
    """Scale ``base`` for each phi in ``phis`` and cost every member (analytically; no torch).

    The drift says how far the real FLOPs growth is from the ideal (alpha*beta^2*gamma^2)^phi: rounding of
    channels, repeats and resolution, and the layers that do not scale (the stem's 3 input channels, the
    classifier's classes), all move it. :func:`drift_warnings` picks the rows worth a warning.
    """
    alpha, beta, gamma = check_coefficients(alpha, beta, gamma)
    base_flops = count_cost(base).flops
    step = constraint_product(alpha, beta, gamma)
    return [_family_row(phi, scale_spec(base, alpha, beta, gamma, phi, resolution_divisor), base_flops, step ** phi)
            for phi in phis]


def preset_family(base: Spec, phis) -> list[FamilyRow]:
    """``base`` scaled with EfficientNet-B<phi>'s official coefficients for each phi (:func:`apply_preset`).

    The preset has no alpha, beta, gamma; its ideal FLOPs growth is depth * width^2 * resolution^2 of
    the preset's own multipliers, so the drift shows rounding alone.
    """
    base_flops = count_cost(base).flops
    rows = []
    for phi in phis:
        spec = apply_preset(base, phi)  # raises for a phi outside 0..7
        width, depth, side, _ = EFFICIENTNET_PRESET[phi]
        rows.append(_family_row(phi, spec, base_flops, depth * width ** 2 * (side / PRESET_BASE_RESOLUTION) ** 2))
    return rows


def _family_row(phi: int, spec: Spec, base_flops: int, expected: float) -> FamilyRow:
    cost = count_cost(spec)
    ratio = cost.flops / base_flops
    return FamilyRow(phi=phi, spec=spec, depth_multiplier=spec.depth_multiplier, width_multiplier=spec.width_multiplier,
                     resolution=spec.resolution, params=cost.params, flops=cost.flops, flops_ratio=ratio,
                     expected_ratio=expected, drift=ratio / expected - 1)


def drift_warnings(rows: list[FamilyRow], limit: float = 0.10) -> list[FamilyRow]:
    """The rows whose FLOPs are more than ``limit`` (relative) away from the ideal growth, either way."""
    return [row for row in rows if abs(row.drift) > limit]


def drift_message(row: FamilyRow) -> str:
    """One line for a drifting row, e.g. for the CLI to print under the table."""
    return (f"{row.name}: FLOPs (multiply-adds) grew x{row.flops_ratio:.2f}, not the ideal x{row.expected_ratio:.2f} "
            f"({row.drift:+.0%}); rounding of channels, repeats or resolution, or layers that do not scale")


_TABLE_HEADERS = ("phi", "depth", "width", "resolution", "params", "FLOPs (multiply-adds)", "FLOPs/base", "ideal",
                  "drift")


def format_family_table(rows: list[FamilyRow]) -> str:
    """A plain-text table: phi, depth and width multipliers, resolution, params, FLOPs (multiply-adds),
    FLOPs/base, the ideal FLOPs/base and the drift between the two."""
    lines = [_TABLE_HEADERS]
    for row in rows:
        lines.append((str(row.phi), f"{row.depth_multiplier:.3g}", f"{row.width_multiplier:.3g}", str(row.resolution),
                      human(row.params), human(row.flops), f"{row.flops_ratio:.2f}", f"{row.expected_ratio:.2f}",
                      f"{row.drift:+.1%}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(_TABLE_HEADERS))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)


_FAMILY_CSV = ("phi", "name", "depth_multiplier", "width_multiplier", "resolution", "params",
               "flops_multiply_adds", "flops_ratio", "expected_ratio", "drift", "file")


def write_family(rows: list[FamilyRow], out_dir, base_name: str | None = None) -> list[Path]:
    """Write ``<name>.yaml`` per member, ``family.csv`` and ``family.png`` into ``out_dir``; return the paths.

    Every file is written whole or not at all. ``base_name`` titles the plot (default: the first
    member's name without its ``-phi<k>``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    records = []
    for row in rows:
        path = out_dir / f"{row.name}.yaml"
        save(row.spec, path)
        written.append(path)
        records.append({"phi": row.phi, "name": row.name, "depth_multiplier": row.depth_multiplier,
                        "width_multiplier": row.width_multiplier, "resolution": row.resolution,
                        "params": row.params, "flops_multiply_adds": row.flops,
                        "flops_ratio": f"{row.flops_ratio:.6g}", "expected_ratio": f"{row.expected_ratio:.6g}",
                        "drift": f"{row.drift:.6g}", "file": path.name})
    written.append(_write_csv(out_dir / "family.csv", _FAMILY_CSV, records))
    if base_name is None and rows:
        base_name = re.sub(r"-phi\d+$", "", rows[0].name)
    written.append(plot_family(rows, out_dir / "family.png", base_name or "base"))
    return written


def plot_family(rows: list[FamilyRow], path, base_name: str) -> Path:
    """FLOPs (multiply-adds) and params against phi, log scale, with the ideal FLOPs growth dashed."""
    figure, axes = _figure(1, 1, (6.0, 4.0))
    ax = axes[0]
    phis = [row.phi for row in rows]
    ax.plot(phis, [row.flops for row in rows], "o-", label="FLOPs (multiply-adds)")
    if rows:
        base_flops = rows[0].flops / rows[0].flops_ratio
        ax.plot(phis, [base_flops * row.expected_ratio for row in rows], "--", color="grey",
                label="ideal FLOPs: base x (alpha beta^2 gamma^2)^phi")
    ax.plot(phis, [row.params for row in rows], "s-", label="params")
    ax.set_yscale("log")
    ax.set_xlabel("phi (compound coefficient)")
    ax.set_ylabel("count")
    ax.set_xticks(phis)
    ax.set_title(f"Compound scaling of {base_name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# The grid search's results
# --------------------------------------------------------------------------------------------

_GRID_CSV = ("alpha", "beta", "gamma", "product", "flops_multiply_adds", "accuracy", "state")


def write_grid(results: list[dict], out_dir) -> list[Path]:
    """Write ``grid.csv`` and ``grid.png`` from dicts {alpha, beta, gamma, flops, accuracy, state}.

    ``product`` is alpha*beta^2*gamma^2; keys beyond the known ones become extra columns (sorted).
    A missing or None accuracy (a failed or pruned candidate) is an empty cell and a grey cross.
    """
    out_dir = Path(out_dir)
    extra = sorted({key for r in results for key in r} - {"alpha", "beta", "gamma", "flops", "accuracy", "state"})
    records = []
    for r in results:
        record = {"alpha": r["alpha"], "beta": r["beta"], "gamma": r["gamma"],
                  "product": f"{constraint_product(r['alpha'], r['beta'], r['gamma']):.6g}",
                  "flops_multiply_adds": _cell(r.get("flops")), "accuracy": _cell(r.get("accuracy")),
                  "state": _cell(r.get("state"))}
        record.update({key: _cell(r.get(key)) for key in extra})
        records.append(record)
    csv_path = _write_csv(out_dir / "grid.csv", _GRID_CSV + tuple(extra), records)
    return [csv_path, plot_grid(results, out_dir / "grid.png")]


def plot_grid(results: list[dict], path) -> Path:
    """Left: accuracy of each candidate (labelled alpha/beta/gamma). Right: alpha against beta coloured by
    accuracy (gamma follows from the constraint). The best candidate is starred in both."""
    figure, (left, right) = _figure(1, 2, (13.0, 4.8))
    best = best_result(results)
    scored = [(i, r) for i, r in enumerate(results) if _finite(r.get("accuracy"))]
    failed = [r for r in results if not _finite(r.get("accuracy"))]
    left.plot([i for i, _ in scored], [r["accuracy"] for _, r in scored], "o", label="accuracy")
    if best is not None:
        left.plot([results.index(best)], [best["accuracy"]], "*", markersize=14, color="tab:red", label="best")
    left.set_xticks(range(len(results)))
    left.set_xticklabels([f"{r['alpha']:g}/{r['beta']:g}/{r['gamma']:g}" for r in results], rotation=90,
                         fontsize="x-small")
    left.set_xlabel("candidate alpha/beta/gamma")
    left.set_ylabel("accuracy at phi = 1")
    left.set_title(f"{len(scored)} scored, {len(failed)} failed or pruned")
    left.grid(True, alpha=0.3)
    left.legend(fontsize="small")
    if scored:
        points = right.scatter([r["alpha"] for _, r in scored], [r["beta"] for _, r in scored],
                               c=[r["accuracy"] for _, r in scored], cmap="viridis", s=60)
        figure.colorbar(points, ax=right, label="accuracy")
    if failed:
        right.plot([r["alpha"] for r in failed], [r["beta"] for r in failed], "x", color="grey",
                   label="failed or pruned")
    if best is not None:
        right.plot([best["alpha"]], [best["beta"]], "*", markersize=16, color="tab:red",
                   label=f"best: {best['alpha']:g}, {best['beta']:g}, {best['gamma']:g}")
    right.set_xlabel("alpha (depth)")
    right.set_ylabel("beta (width)")
    right.set_title("gamma (resolution) follows from alpha beta^2 gamma^2 ~ 2")
    right.grid(True, alpha=0.3)
    if failed or best is not None:
        right.legend(fontsize="small")
    figure.tight_layout()
    return save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

def _cell(value):
    return "" if value is None else value


def _write_csv(path: Path, columns, records: list[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text(path, buffer.getvalue())
    return path


def _figure(rows: int, cols: int, size: tuple[float, float]):
    """A matplotlib Figure on the Agg canvas, without pyplot (no global state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, list(axes.flat)


__all__ = [
    "EFFICIENTNET_COEFFICIENTS", "EFFICIENTNET_PRESET", "FamilyRow", "MAX_PHI", "RESOLUTION_DIVISOR",
    "SMALL_BASE_RESOLUTION", "apply_preset", "best_result", "check_coefficients", "constraint_product",
    "default_resolution_divisor", "drift_message", "drift_warnings", "family", "format_family_table",
    "grid_candidates", "parse_phi", "plot_family", "plot_grid", "preset_family", "round_resolution", "scale_depth",
    "scale_resolution", "scale_spec", "scale_width", "spread", "write_family", "write_grid",
]
