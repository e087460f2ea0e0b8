"""Inference latency of a spec (or a built model, or one block) on this machine's CPU or CUDA GPU.

What is measured: forward passes of a random batch in eval and inference mode, fp32. On CPU the model
and input are channels_last (the layout oneDNN's convolutions prefer) and torch runs ``threads``
threads (default 1: two OpenMP threads on two cores, one of them busy, spin and stall; issue 10 read
lcnet-x1.0 at 5.3 ms idle and 474 ms beside one busy core). On CUDA each pass is timed with a pair of
CUDA events, so the time is the GPU's, not Python's.

How: warm up until two consecutive rounds of passes agree (caches, oneDNN's kernel choice, the CPU's
clock), then time ``repeats`` passes. The median is the number to use; the interquartile range says
how steady the machine was. Every figure states its thread count and clock: with one CPU thread a pass
is timed by the thread's CPU time, which leaves out the time other processes had the core (see
cpu_clock), so a loaded machine reads within a few percent of an idle one (bench/latency_stability.py);
with more threads, the wall clock.

Never beside training: a measurement holds the device's lock exclusively (nas.evaluate.device_lock),
which training holds shared, so several nas processes and Ray workers on one host take turns.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..build import build_model
from ..errors import UserError
from ..spec import Spec
from .device_lock import measuring_on
from .memory import check_fits, forward_pass_bytes

DEVICES = ("cpu", "cuda")
DEFAULT_WARMUP = 5       # passes before the first stability check
DEFAULT_REPEATS = 30     # timed passes after warm-up
DEFAULT_THREADS = 1      # torch threads on CPU: steady under load (see the module note)
_WARMUP_ROUND = 5        # passes per warm-up round
_MAX_WARMUP_ROUNDS = 10
_STABLE = 0.05           # two warm-up rounds within 5 % of each other: warm


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
    threads: int         # torch threads during the measurement (CPU)
    clock: str           # thread CPU time (CPU, 1 thread), wall clock (CPU, more threads) or CUDA events

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


def check_count(what: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{what}: got {value!r}; allowed: an integer >= {minimum}")
    return value


def cpu_model() -> str:
    """The CPU's marketing name (/proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_name(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} CPU, {threads} thread{'s' if threads != 1 else ''}"


class torch_threads:
    """Run a block with ``n`` torch threads, then put the previous count back."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def cpu_clock(threads: int) -> Callable[[], float]:
    """What a CPU pass is timed with: with one torch thread all the work runs in the calling thread, so
    its CPU time is the pass's latency without the time the scheduler gave other processes (on a loaded
    machine that wait was most of a wall-clock reading). With more threads the work is spread over
    OpenMP workers, and only the wall clock sees it."""
    return time.thread_time if threads == 1 else time.perf_counter


def clock_name(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return "CUDA events"
    return "thread CPU time" if cpu_clock(threads) is time.thread_time else "wall clock"


def _cpu_pass_times(run: Callable[[], object], passes: int, clock: Callable[[], float]) -> list[float]:
    times = []
    for _ in range(passes):
        start = clock()
        run()
        times.append((clock() - start) * 1e3)
    return times


def _cuda_pass_times(run: Callable[[], object], passes: int, device: torch.device) -> list[float]:
    torch.cuda.synchronize(device)
    # Record every pair first and synchronise once, so no host wait sits between passes.
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(passes)]
    for start, end in events:
        start.record()
        run()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in events]


def _pass_times(run, passes: int, device: torch.device, clock: Callable[[], float]) -> list[float]:
    if device.type == "cuda":
        with torch.cuda.device(device):  # events record on this device's current stream
            return _cuda_pass_times(run, passes, device)
    return _cpu_pass_times(run, passes, clock)


def _warm_up(run, device: torch.device, minimum: int, clock) -> None:
    """At least ``minimum`` passes, then rounds until two consecutive round medians agree within 5 %."""
    _pass_times(run, minimum, device, clock)
    previous = statistics.median(_pass_times(run, _WARMUP_ROUND, device, clock))
    for _ in range(_MAX_WARMUP_ROUNDS):
        current = statistics.median(_pass_times(run, _WARMUP_ROUND, device, clock))
        if abs(current - previous) <= _STABLE * max(previous, 1e-9):
            return
        previous = current


def time_call(run: Callable[[], object], device: torch.device, threads: int = DEFAULT_THREADS,
              warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``run`` after warm-up, under the device's lock.

    The one timing loop: whole networks (measure_latency) and single blocks (the latency table) go through it.
    """
    clock = cpu_clock(threads)
    with measuring_on(str(device)), torch_threads(threads), torch.inference_mode():
        _warm_up(run, device, warmup, clock)
        return _pass_times(run, repeats, device, clock)


def _model_and_input(model_or_spec, resolution, in_channels):
    if isinstance(model_or_spec, Spec):
        spec = model_or_spec
        return build_model(spec), resolution or spec.resolution, spec.in_channels
    if resolution is None:
        raise UserError("latency resolution: got None; allowed: a positive image side in pixels "
                        "(required when timing a model rather than a spec)")
    return model_or_spec, resolution, in_channels


def measure_latency(model_or_spec: nn.Module | Spec, resolution: int | None = None, device: str = "cpu",
                    batch: int = 1, warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS,
                    in_channels: int = 3, threads: int = DEFAULT_THREADS) -> Latency:
    """Time forward passes of ``model_or_spec`` on ``batch`` random images of ``resolution`` squared pixels.

    A spec is built here (its resolution and input channels are the defaults); a model is used as given
    (``resolution`` required, ``in_channels`` for its input) and put in eval mode. The model is moved to
    ``device`` and, on CPU, to channels_last, in place. ``threads`` torch threads run it (CPU).
    """
    target = torch_device(device, "latency device")
    batch = check_count("latency batch", batch, 1)
    warmup = check_count("latency warmup", warmup, 0)
    repeats = check_count("latency repeats", repeats, 1)
    threads = check_count("latency threads", threads, 1)
    if isinstance(model_or_spec, Spec):  # refused before the model or the input is allocated
        side = check_count("latency resolution", resolution or model_or_spec.resolution, 1)
        check_fits("latency", forward_pass_bytes(model_or_spec, batch, side), target, "--resolution or --batch")
    model, resolution, in_channels = _model_and_input(model_or_spec, resolution, in_channels)
    resolution = check_count("latency resolution", resolution, 1)

    layout = torch.channels_last if target.type == "cpu" else torch.contiguous_format
    model = model.eval().to(target, memory_format=layout)
    x = torch.randn(batch, in_channels, resolution, resolution, device=target).to(memory_format=layout)
    times = time_call(lambda: model(x), target, threads, warmup, repeats)
    median = statistics.median(times)
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else (times[0],) * 3
    return Latency(median_ms=median, q1_ms=q1, q3_ms=q3, min_ms=min(times), max_ms=max(times),
                   fps=batch / (median / 1e3), repeats=repeats, batch=batch, resolution=resolution,
                   device=str(target), hardware=hardware_name(target, threads), threads=threads,
                   clock=clock_name(target, threads))


def latency_report(spec: Spec, device: str = "cpu", batch: int = 1, resolution: int | None = None,
                   repeats: int = DEFAULT_REPEATS, threads: int = DEFAULT_THREADS) -> dict:
    """The keys `nas info --latency --json` merges into its object (times in ms, fps in images/s)."""
    result = measure_latency(spec, resolution, device, batch, repeats=repeats, threads=threads)
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
        "latency_threads": result.threads,
        "latency_clock": result.clock,
    }


__all__ = ["DEFAULT_THREADS", "DEVICES", "Latency", "latency_report", "measure_latency", "time_call",
           "torch_device", "torch_threads"]
