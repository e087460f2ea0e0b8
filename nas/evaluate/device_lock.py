"""Timing never overlaps training on the same device: a cross-process lock in the cache directory.

One lock file per device (``latency-cpu.lock``, ``latency-cuda0.lock``) in ``$NAS_CACHE`` (default
``~/.cache/nas``), so every nas process and Ray worker on this host sees the same one. Training holds
it shared (trials still train side by side); a latency measurement holds it exclusively, so it waits
until no trial trains on that device, and no trial starts training while it runs.

A plain shared/exclusive flock lets a steady stream of overlapping trainers starve a measurement, so a
second file is a turnstile: the measurer holds it for its whole wait and measurement, and a trainer
passes through it (takes and drops it) before taking its shared lock.

Locks are per open file, so threads of one process exclude each other too. The kernel drops a lock
when its holder dies: a killed worker never leaves the device locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

_held = threading.local()   # this thread's locks, so nested use never deadlocks on itself


def cache_dir() -> Path:
    """Where nas keeps per-machine caches (latency tables, locks): $NAS_CACHE, else ~/.cache/nas."""
    path = Path(os.environ.get("NAS_CACHE") or Path.home() / ".cache" / "nas")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lock_path(device: str, suffix: str = "") -> Path:
    name = str(device).replace(":", "")
    name = "cuda0" if name == "cuda" else name  # torch's "cuda" is its first GPU, as a measurement names it
    return cache_dir() / f"latency-{name}{suffix}.lock"


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing the file drops its lock


def _state() -> dict:
    if not hasattr(_held, "locks"):
        _held.locks = {}
    return _held.locks


@contextlib.contextmanager
def measuring_on(device: str) -> Iterator[None]:
    """Hold ``device`` exclusively while timing: waits for every trial training on it to finish."""
    device = str(device)
    held = _state()
    if held.get(device) == "exclusive":
        yield
        return
    if held.get(device) == "shared":
        raise RuntimeError(f"cannot time latency on {device} from inside training on it (it would wait for itself)")
    with _flock(_lock_path(device, ".turnstile"), fcntl.LOCK_EX), _flock(_lock_path(device), fcntl.LOCK_EX):
        held[device] = "exclusive"
        try:
            yield
        finally:
            del held[device]


@contextlib.contextmanager
def training_on(device: str) -> Iterator[None]:
    """Hold ``device`` shared while a trial trains on it, so no latency is timed meanwhile.

    The evaluator wraps one candidate's training in it; trainers do not exclude each other.
    """
    device = str(device)
    held = _state()
    if device in held:
        yield
        return
    with _flock(_lock_path(device, ".turnstile"), fcntl.LOCK_EX):
        pass  # wait behind a measurement that is waiting or running
    with _flock(_lock_path(device), fcntl.LOCK_SH):
        held[device] = "shared"
        try:
            yield
        finally:
            del held[device]


__all__ = ["cache_dir", "measuring_on", "training_on"]
