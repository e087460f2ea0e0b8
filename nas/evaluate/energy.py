"""Energy per image of a spec's inference on an NVIDIA GPU, from the board power NVML reports.

How: after ``warmup_s`` of untimed batches, run inference batches back to back for ``duration_s``
seconds while a background thread samples the board's power draw (``nvmlDeviceGetPowerUsage``,
milliwatts) every ``sample_interval_s``. Then

    J/image = mean power (W) x elapsed seconds / images processed.

The mean power is time-weighted: the samples are integrated with the trapezoid rule and divided by the
span they cover, so a sample that stood for 200 ms weighs twice one that stood for 100 ms (a plain mean
over-weights the bursts where the sampling thread happened to run often). The integration is in
``energy_from_samples``, pure arithmetic, testable without a GPU.

What the number includes: the whole board's power (idle and memory included, not only the model's
share), so it is comparable between architectures measured on the same GPU, not between GPUs. NVML
averages power over a short window (up to ~1 s on some GPUs), which is why the measurement warms up
first and runs for seconds, not milliseconds. Where the GPU has NVML's energy counter (Volta and newer)
the report also gives the counter's difference as a cross-check.

Needs the optional ``nvidia-ml-py`` package (``pip install 'nas[energy]'``), imported only here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import UserError
from ..spec import Spec

DEFAULT_DURATION_S = 5.0
DEFAULT_WARMUP_S = 1.0
DEFAULT_SAMPLE_INTERVAL_S = 0.02


@dataclass(frozen=True)
class Energy:
    joules_per_image: float
    mean_power_w: float      # time-weighted over the samples
    elapsed_s: float         # wall time of the timed inference
    images: int
    power_samples: int


def energy_from_samples(samples: Sequence[tuple[float, float]], elapsed_s: float, images: int) -> Energy:
    """J/image from (timestamp seconds, watts) samples taken while ``images`` images ran in ``elapsed_s``.

    Mean power is the trapezoid-rule integral of the samples over the span they cover, divided by that
    span (a single sample, or samples all at one instant, give their plain mean).
    """
    if not samples:
        raise ValueError("energy: no power samples were recorded")
    if images < 1 or elapsed_s <= 0:
        raise ValueError(f"energy: need images >= 1 and elapsed_s > 0, got {images} and {elapsed_s}")
    ordered = sorted(samples)
    span = ordered[-1][0] - ordered[0][0]
    if span > 0:
        joules = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(ordered, ordered[1:]))
        mean_power = joules / span
    else:
        mean_power = sum(w for _, w in ordered) / len(ordered)
    return Energy(joules_per_image=mean_power * elapsed_s / images, mean_power_w=mean_power,
                  elapsed_s=elapsed_s, images=images, power_samples=len(ordered))


class PowerSampler:
    """Calls ``read_watts`` every ``interval_s`` in a background thread between ``with`` enter and exit."""

    def __init__(self, read_watts: Callable[[], float], interval_s: float = DEFAULT_SAMPLE_INTERVAL_S):
        self.read_watts, self.interval_s = read_watts, interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nas-power-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.perf_counter(), self.read_watts()))
            if self._stop.wait(self.interval_s):
                break

    def __enter__(self) -> PowerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), self.read_watts()))  # close the span at the end


def measure_energy(run_batch: Callable[[], None], images_per_batch: int, read_watts: Callable[[], float],
                   duration_s: float = DEFAULT_DURATION_S,
                   sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S) -> Energy:
    """Run ``run_batch`` back to back for ``duration_s`` (at least once) while sampling ``read_watts``.

    ``run_batch`` must return only when its work is done (synchronise a GPU inside it), and the device
    should be warm already. Knows nothing of GPUs: tests drive it with a fake power reader.
    """
    batches = 0
    with PowerSampler(read_watts, sample_interval_s) as sampler:
        start = time.perf_counter()
        while batches == 0 or time.perf_counter() - start < duration_s:
            run_batch()
            batches += 1
        elapsed = time.perf_counter() - start
    return energy_from_samples(sampler.samples, elapsed, batches * images_per_batch)


def energy_available() -> None:
    """Raise the one-line 'not available here' error unless torch sees an NVIDIA GPU."""
    import torch

    if not torch.cuda.is_available():
        raise _not_available(f"torch {torch.__version__} sees no CUDA GPU")


def _not_available(reason: str) -> UserError:
    return UserError(f"energy: not available here ({reason})")


def _open_nvml(torch_index: int):
    """(pynvml module, handle) of the GPU torch calls cuda:``torch_index``; UserError if NVML is missing."""
    try:
        import pynvml
    except ImportError:
        raise _not_available("the nvidia-ml-py package is not installed; pip install 'nas[energy]'") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise _not_available(f"NVML did not start: {exc}") from None
    try:
        return pynvml, _power_handle(pynvml, torch_index)
    except UserError:
        pynvml.nvmlShutdown()
        raise


def _power_handle(pynvml, torch_index: int):
    import torch

    # torch's index counts only CUDA_VISIBLE_DEVICES; NVML's counts every GPU. The UUID names one GPU in both.
    uuid = getattr(torch.cuda.get_device_properties(torch_index), "uuid", None)
    try:
        handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
    except pynvml.NVMLError:
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch_index)
        except pynvml.NVMLError as exc:
            raise _not_available(f"NVML does not know cuda:{torch_index}: {exc}") from None
    try:
        pynvml.nvmlDeviceGetPowerUsage(handle)
    except pynvml.NVMLError as exc:  # e.g. a MIG slice, or a GPU without a power sensor
        raise _not_available(f"NVML reports no power draw for cuda:{torch_index}: {exc}") from None
    return handle


def _energy_counter_mj(pynvml, handle) -> int | None:
    """Millijoules since the driver loaded (Volta and newer), or None where the GPU lacks the counter."""
    try:
        return pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError:
        return None


def energy_report(spec: Spec, batch: int = 1, resolution: int | None = None, device: str = "cuda",
                  duration_s: float = DEFAULT_DURATION_S, warmup_s: float = DEFAULT_WARMUP_S) -> dict:
    """Energy keys for `nas info --energy --json` and the energy objective (joules, watts, seconds).

    Raises UserError("energy: not available here (...)") without an NVIDIA GPU, a CUDA torch or NVML.
    """
    import torch

    if not str(device).startswith("cuda"):
        raise UserError(f"energy device: got {device!r}; allowed: cuda, cuda:N (NVML measures NVIDIA GPUs only)")
    if not torch.cuda.is_available():
        raise _not_available(f"torch {torch.__version__} sees no CUDA GPU")
    from .latency import torch_device
    from .memory import check_fits, forward_pass_bytes

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"energy batch: got {batch!r}; allowed: an integer >= 1")
    target = torch_device(device, "energy device")
    check_fits("energy", forward_pass_bytes(spec, batch, resolution), target, "--resolution or --batch")
    pynvml, handle = _open_nvml(target.index)
    try:
        return _measure_report(spec, batch, resolution or spec.resolution, target, pynvml, handle,
                               duration_s, warmup_s)
    finally:
        pynvml.nvmlShutdown()


def _measure_report(spec: Spec, batch: int, resolution: int, target, pynvml, handle, duration_s: float,
                    warmup_s: float) -> dict:
    import torch

    from ..build import build_model

    model = build_model(spec).eval().to(target)
    x = torch.randn(batch, spec.in_channels, resolution, resolution, device=target)

    def run_batch() -> None:
        model(x)
        torch.cuda.synchronize(target)

    def read_watts() -> float:
        return pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3

    with torch.inference_mode(), torch.cuda.device(target):
        warm_until = time.perf_counter() + warmup_s
        while time.perf_counter() < warm_until:
            run_batch()
        counter_start = (time.perf_counter(), _energy_counter_mj(pynvml, handle))
        result = measure_energy(run_batch, batch, read_watts, duration_s)
        counter_end = (time.perf_counter(), _energy_counter_mj(pynvml, handle))
    report = {
        "energy_j_per_image": result.joules_per_image,
        "energy_power_w": result.mean_power_w,
        "energy_power_samples": result.power_samples,
        "energy_seconds": result.elapsed_s,
        "energy_images": result.images,
        "energy_batch": batch,
        "energy_resolution": resolution,
        "energy_device": str(target),
        "energy_hardware": torch.cuda.get_device_name(target),
    }
    if counter_start[1] is not None and counter_end[1] is not None:
        # The counter spans a little more than the timed loop (the sampler's start and stop), so take its
        # mean power over its own span and apply it to the loop's time, as for the samples.
        counter_power_w = (counter_end[1] - counter_start[1]) / 1e3 / (counter_end[0] - counter_start[0])
        report["energy_counter_j_per_image"] = counter_power_w * result.elapsed_s / result.images
    return report


__all__ = ["Energy", "PowerSampler", "energy_from_samples", "energy_report", "measure_energy"]
