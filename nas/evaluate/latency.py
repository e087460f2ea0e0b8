"""Inference latency of a spec (or a built model) on this machine's CPU or CUDA GPU.

What is measured: one forward pass of a random batch in eval and inference mode, fp32, repeated
``repeats`` times after ``warmup`` untimed passes. The median is the number to use (robust to a stray
slow pass); the interquartile range and min/max say how steady the machine was. On CPU the model and
input are channels_last (the layout oneDNN's convolutions prefer) and torch uses its default thread
count; on CUDA each pass is timed with a pair of CUDA events, so the time is the GPU's, not Python's.

Latency depends on the machine and on what else runs on it: compare numbers from one machine, and do
not measure while other trials load the same CPU or GPU.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..build import build_model
from ..errors import UserError
from ..spec import Spec

DEVICES = ("cpu", "cuda")
DEFAULT_WARMUP = 5
DEFAULT_REPEATS = 30   # ~1 s for a small model on a laptop CPU; raise it for a steadier median


@dataclass(frozen=True)
class Latency:
    """Per-batch forward time over ``repeats`` timed passes, in milliseconds."""

    median_ms: float
    q1_ms: float         # 25th percentile
    q3_ms: float         # 75th percentile
    min_ms: float
    max_ms: float
    fps: float           # images per second: batch / median seconds
    repeats: int
    batch: int
    resolution: int
    device: str          # "cpu" or "cuda:0"
    hardware: str        # what ran it: the GPU's name, or the CPU and thread count

    @property
    def iqr_ms(self) -> float:
        """Repeat-to-repeat spread: the interquartile range."""
        return self.q3_ms - self.q1_ms


def torch_device(device: str, what: str = "device") -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' as a torch.device; a one-line UserError when it is unknown or absent here."""
    name = str(device)
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise UserError(f"{what}: got {name!r}; allowed: cpu, cuda, cuda:N")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{what}: got {name!r}, but torch {torch.__version__} sees no CUDA GPU on this "
                            "machine; use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise UserError(f"{what}: got {name!r}; allowed: cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return torch.device("cuda", int(index) if index else torch.cuda.current_device())
    return torch.device("cpu")


def _check_count(what: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{what}: got {value!r}; allowed: an integer >= {minimum}")
    return value


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _time_cpu(model: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _time_cuda(model: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        model(x)
    torch.cuda.synchronize(x.device)
    # Record every pair first and synchronise once, so no host wait sits between passes.
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for start, end in events:
        start.record()
        model(x)
        end.record()
    torch.cuda.synchronize(x.device)
    return [start.elapsed_time(end) for start, end in events]


def measure_latency(model_or_spec: nn.Module | Spec, resolution: int | None = None, device: str = "cpu",
                    batch: int = 1, warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS,
                    in_channels: int = 3) -> Latency:
    """Time forward passes of ``model_or_spec`` on ``batch`` random images of ``resolution`` squared pixels.

    A spec is built here (its resolution and input channels are the defaults); a model is used as given
    (``resolution`` required, ``in_channels`` for its input) and put in eval mode. The model is moved to
    ``device`` and, on CPU, to channels_last, in place.
    """
    target = torch_device(device, "latency device")
    batch = _check_count("latency batch", batch, 1)
    warmup = _check_count("latency warmup", warmup, 0)
    repeats = _check_count("latency repeats", repeats, 1)
    if isinstance(model_or_spec, Spec):
        spec = model_or_spec
        model, resolution, in_channels = build_model(spec), resolution or spec.resolution, spec.in_channels
    else:
        model = model_or_spec
        if resolution is None:
            raise UserError("latency resolution: got None; allowed: a positive image side in pixels "
                            "(required when timing a model rather than a spec)")
    resolution = _check_count("latency resolution", resolution, 1)

    layout = torch.channels_last if target.type == "cpu" else torch.contiguous_format
    model = model.eval().to(target, memory_format=layout)
    x = torch.randn(batch, in_channels, resolution, resolution, device=target).to(memory_format=layout)
    with torch.inference_mode():
        if target.type == "cuda":
            with torch.cuda.device(target):  # events record on this device's current stream
                times = _time_cuda(model, x, warmup, repeats)
        else:
            times = _time_cpu(model, x, warmup, repeats)

    median = statistics.median(times)
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else (times[0],) * 3
    return Latency(median_ms=median, q1_ms=q1, q3_ms=q3, min_ms=min(times), max_ms=max(times),
                   fps=batch / (median / 1e3), repeats=repeats, batch=batch, resolution=resolution,
                   device=str(target), hardware=_hardware(target))


def latency_report(spec: Spec, device: str = "cpu", batch: int = 1, resolution: int | None = None,
                   repeats: int = DEFAULT_REPEATS) -> dict:
    """The keys `nas info --latency --json` merges into its object (times in ms, fps in images/s)."""
    result = measure_latency(spec, resolution, device, batch, repeats=repeats)
    return {
        "latency_ms": result.median_ms,
        "latency_spread_ms": result.iqr_ms,      # interquartile range over repeats
        "latency_min_ms": result.min_ms,
        "latency_max_ms": result.max_ms,
        "fps": result.fps,
        "latency_batch": result.batch,
        "latency_repeats": result.repeats,
        "latency_resolution": result.resolution,
        "latency_device": result.device,
        "latency_hardware": result.hardware,
    }


__all__ = ["DEVICES", "Latency", "latency_report", "measure_latency", "torch_device"]
