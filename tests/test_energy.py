"""Energy: the arithmetic on recorded power samples, the sampling loop with a fake meter, and the
one-line 'not available' error where there is no NVIDIA GPU or NVML."""

import sys
import time

import pytest
import torch

import nas
from nas.evaluate import energy
from nas.evaluate.energy import energy_from_samples, energy_report, measure_energy
from nas.spec import from_dict


def test_constant_power():
    samples = [(t / 10, 100.0) for t in range(21)]  # 100 W, every 0.1 s, for 2 s
    result = energy_from_samples(samples, elapsed_s=2.0, images=400)
    assert result.joules_per_image == pytest.approx(0.5)
    assert result.mean_power_w == pytest.approx(100.0)
    assert result.power_samples == 21


def test_uneven_samples_are_time_weighted():
    # 100 W for the first 0.1 s, a ramp to 200 W over 0.9 s, then 200 W for 1 s: 10 + 135 + 200 = 345 J in 2 s.
    samples = [(1.0, 200.0), (0.0, 100.0), (2.0, 200.0), (0.1, 100.0)]  # order does not matter
    result = energy_from_samples(samples, elapsed_s=2.0, images=345)
    assert result.mean_power_w == pytest.approx(172.5)   # a plain mean of the samples would say 150
    assert result.joules_per_image == pytest.approx(1.0)


def test_single_sample_and_empty():
    assert energy_from_samples([(5.0, 60.0)], elapsed_s=1.0, images=30).joules_per_image == pytest.approx(2.0)
    with pytest.raises(ValueError):
        energy_from_samples([], elapsed_s=1.0, images=1)


def test_sampling_loop_with_a_fake_meter():
    def run_batch():
        time.sleep(0.01)

    result = measure_energy(run_batch, images_per_batch=4, read_watts=lambda: 50.0, duration_s=0.2,
                            sample_interval_s=0.01)
    assert result.power_samples >= 2
    assert result.images % 4 == 0 and result.images >= 4
    assert result.elapsed_s >= 0.2
    assert result.joules_per_image == pytest.approx(50.0 * result.elapsed_s / result.images)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without an NVIDIA GPU")
def test_not_available_here(tiny_spec_dict):
    with pytest.raises(nas.UserError, match=r"^energy: not available here \(") as info:
        energy_report(from_dict(tiny_spec_dict))
    assert "\n" not in str(info.value)


def test_without_nvidia_ml_py(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with pytest.raises(nas.UserError, match=r"^energy: not available here \(.*nvidia-ml-py"):
        energy._open_nvml(0)


def test_energy_needs_a_cuda_device(tiny_spec_dict):
    with pytest.raises(nas.UserError, match="energy device"):
        energy_report(from_dict(tiny_spec_dict), device="cpu")
