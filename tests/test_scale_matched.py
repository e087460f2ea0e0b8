"""`nas scale --compare single`: width-, depth- and resolution-only members at the compound members' FLOPs."""

import csv

import pytest

from nas import scale
from nas.cost import count_cost
from nas.scale.matched import matched_multiplier, single_dimension_rows
from nas.spec import from_dict
from nas.zoo import load_spec

#: How far a single-dimension member's FLOPs may be from the compound member's: rounding makes FLOPs a
#: step function of the multiplier (channels to multiples of 8, repeats up, whole pixels).
TOLERANCE = 0.15


@pytest.mark.parametrize("base_name", ["efficientnet-b0", "mobilenetv2-1.0"])
def test_single_dimension_members_match_the_compound_flops(base_name):
    base = load_spec(base_name)
    compound = scale.family(base, 1.2, 1.1, 1.15, [1, 2, 3])
    singles = single_dimension_rows(base, compound)
    assert [(r.phi, r.scaling) for r in singles] == [(phi, d) for phi in (1, 2, 3)
                                                      for d in ("width", "depth", "resolution")]
    for row in singles:
        target = next(c for c in compound if c.phi == row.phi)
        assert count_cost(row.spec).flops == row.flops
        assert abs(row.flops / target.flops - 1) < TOLERANCE, (row.name, row.flops, target.flops)
        assert row.drift == pytest.approx(row.flops / target.flops - 1)
        # one dimension alone: the other two are the base's
        changed = {"width": row.spec.width_multiplier != base.width_multiplier,
                   "depth": row.spec.depth_multiplier != base.depth_multiplier,
                   "resolution": row.spec.resolution != base.resolution}
        assert [d for d, moved in changed.items() if moved] == [row.scaling], row.name


def test_the_bisection_finds_the_closest_step(tiny_spec_dict):
    base = from_dict(tiny_spec_dict)
    target = count_cost(scale.scale_width(base, 1.5)).flops
    m = matched_multiplier(scale.scale_width, base, target)
    assert count_cost(scale.scale_width(base, m)).flops == target  # an attainable target is hit exactly
    below, above = (count_cost(scale.scale_resolution(base, x)).flops for x in (1.0, 3.0))
    m = matched_multiplier(scale.scale_resolution, base, (below + above) // 2)
    side = scale.scale_resolution(base, m).resolution  # whole pixels: the nearer of the two sides around it
    got = count_cost(scale.scale_resolution(base, m)).flops
    for other in (side - 1, side + 1):
        other_flops = count_cost(scale.scale_resolution(base, other / base.resolution)).flops
        assert abs(got - (below + above) // 2) <= abs(other_flops - (below + above) // 2) * 1.01


def test_family_csv_has_a_scaling_column(tmp_path, tiny_spec_dict):
    base = from_dict(tiny_spec_dict)
    compound = scale.family(base, 1.2, 1.1, 1.15, [1, 2])
    scale.write_family(compound + single_dimension_rows(base, compound), tmp_path, base.name)
    with open(tmp_path / "family.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["scaling"] for r in rows] == ["compound"] * 2 + ["width", "depth", "resolution"] * 2
    assert all((tmp_path / r["file"]).exists() for r in rows)
    table = scale.format_family_table(compound + single_dimension_rows(base, compound)).splitlines()
    assert [line.split()[:2] for line in table[3:6]] == [["1", "width"], ["1", "depth"], ["1", "resolution"]]
