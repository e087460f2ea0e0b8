"""Compound scaling: the alpha/beta/gamma grid, phi parsing, the EfficientNet preset, and family emission."""

import csv
import math
import subprocess
import sys

import pytest

import nas
from nas import scale
from nas.spec import from_dict, replace, spec_hash

# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("step, target, tolerance, max_value", [
    (0.05, 2.0, 0.1, 1.3),    # the defaults
    (0.05, 2.0, 0.05, 2.0),
    (0.1, 2.0, 0.1, 1.5),
    (0.02, 1.5, 0.03, 1.2),
])
def test_every_candidate_meets_the_constraint(step, target, tolerance, max_value):
    found = scale.grid_candidates(step=step, target=target, tolerance=tolerance, max_value=max_value)
    assert found
    assert found == sorted(found) and len(set(found)) == len(found)
    for alpha, beta, gamma in found:
        assert 1 <= alpha <= max_value and 1 <= beta <= max_value and 1 <= gamma <= max_value
        assert abs(alpha * beta ** 2 * gamma ** 2 - target) <= tolerance + 1e-9
        for value in (alpha, beta, gamma):  # on the grid
            assert abs((value - 1) / step - round((value - 1) / step)) < 1e-6


def test_grid_misses_nothing():
    """An independent enumeration over integer grid steps finds the same candidates."""
    steps = range(0, 7)  # 1.00 .. 1.30 in 0.05
    expected = [(1 + a / 20, 1 + b / 20, 1 + g / 20) for a in steps for b in steps for g in steps
                if abs((20 + a) * (20 + b) ** 2 * (20 + g) ** 2 / 20 ** 5 - 2) <= 0.1]
    found = scale.grid_candidates()
    assert len(found) == len(expected) == 53
    assert all(math.isclose(x, y) for f, e in zip(found, expected) for x, y in zip(f, e))


def test_paper_coefficients_are_in_the_default_grid():
    assert scale.EFFICIENTNET_COEFFICIENTS in scale.grid_candidates()
    assert scale.constraint_product(1.2, 1.1, 1.15) == pytest.approx(1.92027)


@pytest.mark.parametrize("cap", [1, 2, 5, 10, 52])
def test_max_candidates_keeps_an_even_spread(cap):
    full = scale.grid_candidates()
    capped = scale.grid_candidates(max_candidates=cap)
    assert len(capped) == cap
    assert set(capped) <= set(full) and capped == sorted(capped)
    if cap > 1:
        assert capped[0] == full[0] and capped[-1] == full[-1]
        positions = [full.index(c) for c in capped]
        gaps = [b - a for a, b in zip(positions, positions[1:])]
        assert max(gaps) - min(gaps) <= 1
    assert scale.grid_candidates(max_candidates=1000) == full


@pytest.mark.parametrize("kwargs", [dict(step=0), dict(step=-0.05), dict(tolerance=-1), dict(target=0.5),
                                    dict(max_value=0.9), dict(max_candidates=0), dict(step="x")])
def test_bad_grid_arguments(kwargs):
    with pytest.raises(nas.UserError):
        scale.grid_candidates(**kwargs)


# ---------------------------------------------------------------------------------------------
# What users type
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("1..7", [1, 2, 3, 4, 5, 6, 7]), (" 2 .. 4 ", [2, 3, 4]), ("3..3", [3]), ("1,3,5", [1, 3, 5]),
    ("5, 1, 3, 3", [1, 3, 5]), ("4", [4]), (4, [4]), ("16", [16]),
])
def test_parse_phi(text, expected):
    assert scale.parse_phi(text) == expected


@pytest.mark.parametrize("text", ["7..1", "1..x", "0", "-1", "", "  ", "1..", "..3", "0..3", "1,,2", "1.5", "17",
                                  "1..17", "1-7", "one", None, True, 1.0, [1, 2]])
def test_parse_phi_refuses_careless_input(text):
    with pytest.raises(nas.UserError) as info:
        scale.parse_phi(text)
    message = str(info.value)
    assert "\n" not in message and message.startswith("phi: got ") and repr(text) in message and "allowed" in message


def test_check_coefficients():
    assert scale.check_coefficients(1, 1.1, "1.15") == (1.0, 1.1, 1.15)
    for bad in (0.9, 0, -1, float("nan"), float("inf"), "x", None, True):
        with pytest.raises(nas.UserError, match=r"beta: got .*allowed: a number >= 1"):
            scale.check_coefficients(1.2, bad, 1.15)


# ---------------------------------------------------------------------------------------------
# Scaling one spec
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def b0():
    return nas.load_spec("efficientnet-b0")


@pytest.fixture
def tiny(tiny_spec_dict):
    return from_dict(tiny_spec_dict)


PUBLISHED_PARAMS = [5288548, 7794184, 9109994, 12233232, 19341616, 30389784, 43040704, 66347960]


@pytest.mark.parametrize("phi", range(8))
def test_preset_reproduces_the_zoo(b0, phi):
    scaled = scale.apply_preset(b0, phi)
    zoo = nas.load_spec(f"efficientnet-b{phi}")
    assert scaled.name == zoo.name
    assert spec_hash(scaled) == spec_hash(zoo)  # the same architecture, field for field
    cost, zoo_cost = nas.count_cost(scaled), nas.count_cost(zoo)
    assert cost.params == zoo_cost.params == PUBLISHED_PARAMS[phi]
    assert cost.flops == zoo_cost.flops


def test_preset_refuses_unknown_phi(b0):
    for bad in (8, -1, 1.5, True, "3"):
        with pytest.raises(nas.UserError, match="allowed: an integer from 0 to 7"):
            scale.apply_preset(b0, bad)


@pytest.mark.parametrize("side, expected", [(224, 224), (257.6, 256), (260, 264), (259.9, 256), (3, 8), (36.8, 40)])
def test_round_resolution_is_nearest_multiple_of_8(side, expected):
    assert scale.round_resolution(side) == expected


def test_scale_spec(b0):
    scaled = scale.scale_spec(b0, 1.2, 1.1, 1.15, 2)
    assert scaled.name == "efficientnet-b0-phi2"
    assert scaled.depth_multiplier == 1.44 and scaled.width_multiplier == 1.21
    assert scaled.resolution == 296  # 224 * 1.3225 = 296.24
    assert scaled.stages == b0.stages and scaled.head == b0.head
    assert "alpha=1.2" in scaled.notes
    assert spec_hash(scale.scale_spec(b0, 1.2, 1.1, 1.15, 0)) == spec_hash(b0)
    # the base's own multipliers compose with the scaling
    wide = replace(b0, width_multiplier=0.5, depth_multiplier=2.0)
    scaled = scale.scale_spec(wide, 1.2, 1.1, 1.15, 1)
    assert scaled.width_multiplier == 0.55 and scaled.depth_multiplier == 2.4


def test_scale_spec_refuses_what_cannot_be_built(b0):
    with pytest.raises(nas.UserError, match="depth_multiplier"):
        scale.scale_spec(b0, 2.0, 1.0, 1.0, 5)  # depth x32
    with pytest.raises(nas.UserError, match="alpha"):
        scale.scale_spec(b0, 0.8, 1.1, 1.15, 1)
    with pytest.raises(nas.UserError, match="phi"):
        scale.scale_spec(b0, 1.2, 1.1, 1.15, -1)


def test_single_dimension_scaling(b0):
    base = nas.count_cost(b0)
    wide, deep, sharp = scale.scale_width(b0, 1.4), scale.scale_depth(b0, 2.0), scale.scale_resolution(b0, 1.3)
    assert (wide.width_multiplier, wide.depth_multiplier, wide.resolution) == (1.4, 1.0, 224)
    assert (deep.width_multiplier, deep.depth_multiplier, deep.resolution) == (1.0, 2.0, 224)
    assert (sharp.width_multiplier, sharp.depth_multiplier, sharp.resolution) == (1.0, 1.0, 288)  # 291.2 -> 288
    for spec in (wide, deep):
        assert nas.count_cost(spec).params > base.params
    assert nas.count_cost(sharp).params == base.params and nas.count_cost(sharp).flops > base.flops
    slim = scale.scale_width(b0, 0.5)  # MobileNet's alpha may shrink
    assert nas.count_cost(slim).flops < base.flops
    assert len({wide.name, deep.name, sharp.name, slim.name}) == 4
    for bad in (0, -1, "x", float("nan")):
        with pytest.raises(nas.UserError):
            scale.scale_width(b0, bad)


# ---------------------------------------------------------------------------------------------
# The family
# ---------------------------------------------------------------------------------------------

def test_family_costs_and_drift(b0):
    rows = scale.family(b0, 1.2, 1.1, 1.15, [1, 2, 3, 4])
    base = nas.count_cost(b0)
    assert [row.phi for row in rows] == [1, 2, 3, 4]
    ratios = [row.flops_ratio for row in rows]
    assert all(a < b for a, b in zip([1.0] + ratios, ratios))  # FLOPs grow with phi
    assert all(a < b for a, b in zip([base.params] + [r.params for r in rows], [r.params for r in rows]))
    for row in rows:
        cost = nas.count_cost(row.spec)
        assert (row.params, row.flops) == (cost.params, cost.flops)
        assert row.flops_ratio == pytest.approx(cost.flops / base.flops)
        assert row.expected_ratio == pytest.approx(1.92027 ** row.phi, rel=1e-5)
        assert row.drift == pytest.approx(row.flops_ratio / row.expected_ratio - 1)
        assert (row.depth_multiplier, row.width_multiplier, row.resolution) == (
            row.spec.depth_multiplier, row.spec.width_multiplier, row.spec.resolution)


def test_preset_family_costs_and_drift(b0):
    rows = scale.preset_family(b0, [1, 7])
    assert [row.name for row in rows] == ["efficientnet-b1", "efficientnet-b7"]
    assert [row.params for row in rows] == [PUBLISHED_PARAMS[1], PUBLISHED_PARAMS[7]]
    # the ideal is the preset's own depth * width^2 * resolution^2; B1's repeats round up (16 blocks -> 23)
    assert rows[0].expected_ratio == pytest.approx(1.1 * (240 / 224) ** 2)
    assert rows[1].expected_ratio == pytest.approx(3.1 * 2.0 ** 2 * (600 / 224) ** 2)
    assert rows[0].drift == pytest.approx(rows[0].flops_ratio / rows[0].expected_ratio - 1) and rows[0].drift > 0.3
    with pytest.raises(nas.UserError, match="allowed: an integer from 0 to 7"):
        scale.preset_family(b0, [8])


def test_default_resolution_divisor():
    assert scale.default_resolution_divisor(224) == 8 and scale.default_resolution_divisor(100) == 8
    assert scale.default_resolution_divisor(99) == 1 and scale.default_resolution_divisor(16) == 1


def test_drift_warnings_pick_rows_over_the_limit(b0):
    row = scale.family(b0, 1.2, 1.1, 1.15, [1])[0]
    rows = [replace(row, drift=d) for d in (0.0, 0.05, -0.05, 0.1, 0.15, -0.2)]
    assert [r.drift for r in scale.drift_warnings(rows)] == [0.15, -0.2]
    assert [r.drift for r in scale.drift_warnings(rows, limit=0.04)] == [0.05, -0.05, 0.1, 0.15, -0.2]
    assert "+15%" in scale.drift_message(rows[4]) and "FLOPs (multiply-adds)" in scale.drift_message(rows[4])


def test_format_family_table(tiny):
    rows = scale.family(tiny, 1.2, 1.1, 1.15, [1, 2, 3])
    lines = scale.format_family_table(rows).splitlines()
    assert len(lines) == 4
    for word in ("phi", "depth", "width", "resolution", "params", "FLOPs (multiply-adds)", "FLOPs/base", "ideal",
                 "drift"):
        assert word in lines[0]
    assert lines[1].split()[0] == "1" and lines[3].split()[0] == "3"
    assert lines[1].split()[-1] == f"{rows[0].drift:+.1%}" and lines[1].split()[-2] == f"{rows[0].expected_ratio:.2f}"


def _png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("which, phis", [("tiny", [1, 2, 3]), ("b0", [1])])
def test_write_family_files_reload_and_build(tmp_path, tiny, b0, which, phis):
    import torch

    base = tiny if which == "tiny" else replace(b0, num_classes=10)
    rows = scale.family(base, 1.2, 1.1, 1.15, phis)
    written = scale.write_family(rows, tmp_path / "family", base.name)
    names = sorted(p.name for p in (tmp_path / "family").iterdir())
    assert names == sorted([f"{base.name}-phi{k}.yaml" for k in phis] + ["family.csv", "family.png"])
    assert set(written) == {tmp_path / "family" / n for n in names}
    for row in rows:
        spec = nas.load(tmp_path / "family" / f"{row.name}.yaml")
        assert spec.name == row.name and spec_hash(spec) == spec_hash(row.spec)
        model = nas.build_model(spec)
        assert sum(p.numel() for p in model.parameters()) == row.params
        if which == "tiny":
            with torch.inference_mode():
                out = model.eval()(torch.randn(1, 3, spec.resolution, spec.resolution))
            assert out.shape == (1, 10)
    with open(tmp_path / "family" / "family.csv") as fh:
        records = list(csv.DictReader(fh))
    assert [int(r["phi"]) for r in records] == phis
    assert [int(r["flops_multiply_adds"]) for r in records] == [row.flops for row in rows]
    assert [float(r["drift"]) for r in records] == pytest.approx([row.drift for row in rows], rel=1e-5)
    assert _png(tmp_path / "family" / "family.png")


# ---------------------------------------------------------------------------------------------
# The grid search's results
# ---------------------------------------------------------------------------------------------

GRID_RESULTS = [
    {"alpha": 1.0, "beta": 1.1, "gamma": 1.3, "flops": 800, "accuracy": 0.91, "state": "complete"},
    {"alpha": 1.2, "beta": 1.1, "gamma": 1.15, "flops": 700, "accuracy": 0.93, "state": "complete", "seconds": 3.5},
    {"alpha": 1.3, "beta": 1.25, "gamma": 1.0, "flops": 650, "accuracy": 0.93, "state": "complete"},
    {"alpha": 1.15, "beta": 1.2, "gamma": 1.1, "flops": 900, "accuracy": None, "state": "failed"},
]


def test_best_result():
    assert scale.best_result(GRID_RESULTS) is GRID_RESULTS[2]  # a tie on accuracy goes to fewer FLOPs
    assert scale.best_result(GRID_RESULTS[3:]) is None
    assert scale.best_result([]) is None


def test_write_grid(tmp_path):
    written = scale.write_grid(GRID_RESULTS, tmp_path)
    assert written == [tmp_path / "grid.csv", tmp_path / "grid.png"]
    with open(tmp_path / "grid.csv") as fh:
        records = list(csv.DictReader(fh))
    assert list(records[0]) == ["alpha", "beta", "gamma", "product", "flops_multiply_adds", "accuracy", "state",
                                "seconds"]
    assert float(records[1]["product"]) == pytest.approx(1.92027)
    assert records[3]["accuracy"] == "" and records[3]["state"] == "failed" and records[1]["seconds"] == "3.5"
    assert _png(tmp_path / "grid.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.csv", "grid.png"]  # no temp files left


def test_scale_imports_neither_torch_nor_matplotlib():
    code = "import sys, nas.scale; assert not {'torch', 'matplotlib'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)
