"""A compound-scaled family: one row per phi with its cost, and how far its FLOPs drift from the ideal."""

from __future__ import annotations

from dataclasses import dataclass

from ..cost import count_cost
from ..spec import Spec
from ..units import human
from .compound import (
    EFFICIENTNET_PRESET,
    PRESET_BASE_RESOLUTION,
    apply_preset,
    check_coefficients,
    constraint_product,
    scale_spec,
)

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
    scaling: str = "compound"  # or width, depth, resolution: one dimension alone, at a compound member's FLOPs

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
    FLOPs/base, the ideal FLOPs/base and the drift between the two. A single-dimension member's phi reads
    "1 width" (its ideal is the compound member's FLOPs/base)."""
    lines = [_TABLE_HEADERS]
    for row in rows:
        phi = str(row.phi) if row.scaling == "compound" else f"{row.phi} {row.scaling}"
        lines.append((phi, f"{row.depth_multiplier:.3g}", f"{row.width_multiplier:.3g}", str(row.resolution),
                      human(row.params), human(row.flops), f"{row.flops_ratio:.2f}", f"{row.expected_ratio:.2f}",
                      f"{row.drift:+.1%}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(_TABLE_HEADERS))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)
