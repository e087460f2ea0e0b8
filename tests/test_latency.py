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
