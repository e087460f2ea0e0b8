"""Refuse work that cannot fit in memory before allocating it.

``nas info --latency --resolution 100000`` used to ask torch for a 120 GB input tensor and die with a
RuntimeError; a training resolution of 100000 asked for tens of terabytes of resized images. These
estimates are rough on purpose (they only need to tell "fits" from "absurd"): an estimate above the
memory of the device is refused with one line naming the setting to lower.
"""

from __future__ import annotations

import os

import torch

from ..errors import UserError
from ..spec import Spec, replace, resolve

FLOAT_BYTES = 4
#: A block's widest inner tensor is its expanded feature map (MBConv's 6x), and a forward pass holds an
#: input and an output at once: the largest feature map between blocks, times this, bounds the peak.
INNER_ALLOWANCE = 8


def memory_bytes(device: torch.device | str = "cpu") -> int:
    """The device's memory: a CUDA GPU's total, or this machine's physical RAM."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def forward_pass_bytes(spec: Spec, batch: int, resolution: int | None = None) -> int:
    """A rough upper estimate of the memory one inference pass of ``spec`` on ``batch`` images needs."""
    if resolution is not None and resolution != spec.resolution:
        spec = replace(spec, resolution=resolution)
    largest = spec.in_channels * spec.resolution * spec.resolution
    for rb in resolve(spec).blocks:
        out_channels = rb.block.output_channels(rb.in_channels)
        largest = max(largest, rb.in_channels * rb.in_size[0] * rb.in_size[1],
                      out_channels * rb.out_size[0] * rb.out_size[1])
    return batch * largest * INNER_ALLOWANCE * FLOAT_BYTES


def check_fits(what: str, needed: int, device: torch.device | str, lower: str) -> None:
    """UserError when ``needed`` bytes exceed the device's memory; ``lower`` names the settings to reduce."""
    available = memory_bytes(device)
    if needed > available:
        raise UserError(f"{what}: needs about {_gib(needed)} of memory, more than the {_gib(available)} "
                        f"the {torch.device(device).type} has; allowed: a smaller {lower}")


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n < 2**40 else f"{n / 2**40:,.0f} TiB"
