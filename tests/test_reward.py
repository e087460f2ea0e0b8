"""The reward is plain arithmetic; check it against hand-computed values."""

import math

import pytest

from nas import reward as r


def test_soft_reward_at_target_is_accuracy():
    assert r.reward(0.8, 400e6, 400e6, "soft", w=-0.7) == pytest.approx(0.8)


def test_soft_reward_prefers_cheaper_models():
    half = r.reward(0.8, 200e6, 400e6, "soft", w=-0.7)
    assert half == pytest.approx(0.8 * 2 ** 0.7)
    assert r.reward(0.8, 800e6, 400e6, "soft", w=-0.7) == pytest.approx(0.8 * 2 ** -0.7)


def test_paper_exponent_is_gentle():
    # w = -0.07: twice as cheap earns only 5 %, the EfficientNet / MnasNet setting
    assert r.reward(1.0, 200e6, 400e6, "soft", w=-0.07) == pytest.approx(2 ** 0.07)
    assert 1.04 < 2 ** 0.07 < 1.05


def test_piecewise_uses_w_below_and_w_above():
    assert r.reward(0.9, 300e6, 400e6, "piecewise", w_below=0.0, w_above=-1.0) == pytest.approx(0.9)
    assert r.reward(0.9, 800e6, 400e6, "piecewise", w_below=0.0, w_above=-1.0) == pytest.approx(0.45)


def test_hard_limit():
    assert r.within_hard_limit(399e6, 400e6)
    assert not r.within_hard_limit(401e6, 400e6)
    assert r.within_hard_limit(1e12, None)


@pytest.mark.parametrize("accuracy", [float("nan"), None, float("inf")])
def test_failed_accuracy_is_never_a_reward(accuracy):
    with pytest.raises(ValueError):
        r.reward(accuracy, 400e6, 400e6)


def test_zero_cost_is_rejected():
    with pytest.raises(ValueError):
        r.reward(0.5, 0.0, 400e6)
    assert math.isfinite(r.reward(0.5, 1.0, 400e6))
