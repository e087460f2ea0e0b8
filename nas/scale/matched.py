"""Single-dimension members at the compound members' FLOPs: EfficientNet's Figure 8 (Tan & Le 2019).

For each compound member, the base is scaled in one dimension alone (width, depth or resolution, with
scale_width / scale_depth / scale_resolution) by the multiplier whose FLOPs come closest to the compound
member's. Rounding (channels to multiples of 8, repeats up, whole pixels) makes FLOPs a step function of
the multiplier, so the match is close, not exact; family.csv shows each member's FLOPs and its drift
from the compound member's. Analytic counts only: no torch.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..cost import count_cost
from ..spec import Spec
from .compound import scale_depth, scale_resolution, scale_width
from .family import FamilyRow

#: The ways of scaling one dimension alone, by the name the `scaling` column of family.csv gives them.
SINGLE_DIMENSIONS = {"width": scale_width, "depth": scale_depth, "resolution": scale_resolution}
#: Bisection steps on the multiplier: 2^-40 of the bracket, far below what rounding can resolve.
BISECTION_STEPS = 40
#: The largest multiplier tried: beyond it a single dimension is not a sensible comparison.
MAX_MULTIPLIER = 64.0


def matched_multiplier(scale_one, base: Spec, target_flops: int) -> float:
    """The multiplier m >= 1 whose ``scale_one(base, m)`` has FLOPs closest to ``target_flops`` (in log).

    FLOPs only grow with m, in steps, so a bisection brackets the target between the largest m below it
    and the smallest m at or above it; the closer of the two wins.
    """
    def flops(m: float) -> int:
        return count_cost(scale_one(base, m)).flops

    low, high = 1.0, 2.0
    while flops(high) < target_flops and high < MAX_MULTIPLIER:
        low, high = high, high * 2
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        if flops(middle) < target_flops:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda m: abs(math.log(flops(m) / target_flops)))


def single_dimension_rows(base: Spec, compound: list[FamilyRow]) -> list[FamilyRow]:
    """For every compound member (phi >= 1), one member per dimension at its FLOPs, named
    ``<base>-phi<k>-<dimension>``, with scaling = the dimension."""
    base_flops = count_cost(base).flops
    rows = []
    for member in (row for row in compound if row.phi >= 1):
        for dimension, scale_one in SINGLE_DIMENSIONS.items():
            multiplier = matched_multiplier(scale_one, base, member.flops)
            spec = scale_one(base, multiplier)
            spec = replace(spec, name=f"{base.name}-phi{member.phi}-{dimension}",
                           notes=f"{spec.notes} FLOPs matched to {member.name} (EfficientNet's Figure 8).")
            cost = count_cost(spec)
            ratio = cost.flops / base_flops
            rows.append(FamilyRow(phi=member.phi, spec=spec, depth_multiplier=spec.depth_multiplier,
                                  width_multiplier=spec.width_multiplier, resolution=spec.resolution,
                                  params=cost.params, flops=cost.flops, flops_ratio=ratio,
                                  expected_ratio=member.flops_ratio, drift=ratio / member.flops_ratio - 1,
                                  scaling=dimension))
    return rows
