"""Latency: a positive median, a spread, fps consistent with the median, one-line errors for bad devices."""

import pytest
import torch

import nas
from nas.evaluate.latency import latency_report, measure_latency
from nas.spec import from_dict


@pytest.fixture
def tiny(tiny_spec_dict):
    return from_dict(tiny_spec_dict)


def test_latency_of_a_spec(tiny):
    result = measure_latency(tiny, batch=2, warmup=1, repeats=5)
    assert result.median_ms > 0
    assert result.iqr_ms >= 0 and result.q1_ms <= result.median_ms <= result.q3_ms
    assert 0 < result.min_ms <= result.median_ms <= result.max_ms
    assert result.fps == pytest.approx(2 / (result.median_ms / 1e3))
    assert (result.repeats, result.batch, result.resolution, result.device) == (5, 2, 32, "cpu")
    assert result.threads == 1 and result.hardware.endswith("CPU, 1 thread")


def test_the_thread_count_is_used_stated_and_restored(tiny):
    seen = []
    model = nas.build_model(tiny)
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    result = measure_latency(model, resolution=32, warmup=0, repeats=3, threads=2)
    assert set(seen) == {2} and result.threads == 2 and "2 threads" in result.hardware
    assert torch.get_num_threads() == 1  # the conftest's count, back after the measurement
    with pytest.raises(nas.UserError, match="threads"):
        measure_latency(tiny, threads=0)


def test_warm_up_runs_until_stable(tiny):
    calls = []
    model = nas.build_model(tiny)
    model.register_forward_hook(lambda *_: calls.append(1))
    measure_latency(model, resolution=32, warmup=2, repeats=4)
    # at least the minimum, then two rounds of 5 compared, then the timed passes
    assert len(calls) >= 2 + 2 * 5 + 4


def test_latency_of_a_model_needs_a_resolution(tiny):
    model = nas.build_model(tiny)
    assert measure_latency(model, resolution=24, warmup=0, repeats=2).median_ms > 0
    with pytest.raises(nas.UserError, match="resolution"):
        measure_latency(model)


def test_latency_report_keys(tiny):
    report = latency_report(tiny, batch=1, repeats=3)
    assert report["latency_ms"] > 0 and report["latency_spread_ms"] >= 0
    assert report["fps"] == pytest.approx(1e3 / report["latency_ms"])
    assert report["latency_device"] == "cpu" and report["latency_batch"] == 1
    assert report["latency_threads"] == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_user_error(tiny):
    with pytest.raises(nas.UserError, match="no CUDA GPU") as info:
        measure_latency(tiny, device="cuda", repeats=1)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:1"])
def test_unknown_device_is_a_user_error(tiny, device):
    with pytest.raises(nas.UserError, match="allowed: cpu, cuda, cuda:N"):
        measure_latency(tiny, device=device)


def test_bad_repeats_is_a_user_error(tiny):
    with pytest.raises(nas.UserError, match="repeats"):
        measure_latency(tiny, repeats=0)
