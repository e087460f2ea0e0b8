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

The package imports no torch; matplotlib is imported only inside the plotting functions.

- ``compound``: the coefficients and phi as the user gives them, one spec scaled, the preset, the grid;
- ``family``: one row per phi with its cost and drift from the ideal FLOPs;
- ``files``: family.csv, grid.csv, the specs and the plots (written through nas.io).
"""

from .compound import (
                       EFFICIENTNET_COEFFICIENTS,
                       EFFICIENTNET_PRESET,
                       MAX_PHI,
                       RESOLUTION_DIVISOR,
                       SMALL_BASE_RESOLUTION,
                       apply_preset,
                       best_result,
                       check_coefficients,
                       constraint_product,
                       default_resolution_divisor,
                       grid_candidates,
                       parse_phi,
                       round_resolution,
                       scale_depth,
                       scale_resolution,
                       scale_spec,
                       scale_width,
                       spread,
)
from .family import FamilyRow, drift_message, drift_warnings, family, format_family_table, preset_family
from .files import plot_family, plot_grid, write_family, write_grid

__all__ = [
    "EFFICIENTNET_COEFFICIENTS", "EFFICIENTNET_PRESET", "FamilyRow", "MAX_PHI", "RESOLUTION_DIVISOR",
    "SMALL_BASE_RESOLUTION", "apply_preset", "best_result", "check_coefficients", "constraint_product",
    "default_resolution_divisor", "drift_message", "drift_warnings", "family", "format_family_table",
    "grid_candidates", "parse_phi", "plot_family", "plot_grid", "preset_family", "round_resolution", "scale_depth",
    "scale_resolution", "scale_spec", "scale_width", "spread", "write_family", "write_grid",
]
