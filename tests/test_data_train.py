"""The digits data set and the proxy trainer on real data (the other data sets: test_data.py, test_data_fetch.py)."""

import pytest
import torch

from nas.errors import UserError
from nas.evaluate.data import load_dataset
from nas.evaluate.train import TrainSettings, lr_factor, proxy_spec, train_and_evaluate
from nas.spec import from_dict


def test_digits_split_is_stratified_and_normalised():
    data = load_dataset("digits", seed=0)
    assert data.train_x.shape[1:] == (3, 8, 8) and data.num_classes == 10
    assert len(data.train_x) + len(data.test_x) == 1797
    counts = torch.bincount(data.test_y, minlength=10)
    assert counts.min() >= 30  # every class is held out
    assert abs(float(data.train_x.mean())) < 0.05
    again = load_dataset("digits", seed=0)
    assert torch.equal(again.test_y, data.test_y)


def test_resolution_upsamples():
    assert load_dataset("digits", resolution=16).resolution == 16


def test_proxy_training_learns_digits(tiny_spec_dict):
    data = load_dataset("digits")
    spec = from_dict(tiny_spec_dict)
    seen = []
    result = train_and_evaluate(spec, data, TrainSettings(epochs=3), report=lambda e, a: seen.append((e, a)))

    assert [e for e, _ in seen] == [0, 1, 2] and result.curve == [a for _, a in seen]
    assert proxy_spec(spec, data).num_classes == 10 and proxy_spec(spec, data).resolution == 8


def test_schedules():
    settings = TrainSettings(schedule="cosine")
    values = [lr_factor(s, 100, 10, settings) for s in range(100)]
    assert values[0] < values[5] and max(values) <= 1.0 and values[-1] < 0.01  # warm-up, then cosine to ~0
    cyclic = TrainSettings(schedule="cyclic", cycle_epochs=1.0, lr_min_ratio=0.2)
    values = [lr_factor(s, 100, 10, cyclic) for s in range(30)]
    assert values[0] == values[10] == values[20] == 1.0  # restarts every cycle
    assert values[9] == pytest.approx(1 - 0.8 * 0.9) and all(0.2 <= v <= 1.0 for v in values)


def test_unknown_dataset():
    with pytest.raises(UserError, match="allowed: digits"):
        load_dataset("imagenet")

