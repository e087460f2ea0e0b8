"""How much memory a forward pass needs, checked against the device's before anything is allocated
(the torch-free check and its message are nas.memory's)."""

from __future__ import annotations

import torch

from .. import memory
from ..spec import Spec, replace, resolve

FLOAT_BYTES = 4
#: A block's widest inner tensor is its expanded feature map (MBConv's 6x), and a forward pass holds an
#: input and an output at once: the largest feature map between blocks, times this, bounds the peak.
INNER_ALLOWANCE = 8


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
    """UserError when ``needed`` bytes exceed the memory of ``device`` (a CUDA GPU's, else this machine's RAM)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        available = int(torch.cuda.get_device_properties(device).total_memory)
        memory.check_fits(what, needed, lower, available, f"GPU {torch.cuda.get_device_name(device)}")
    else:
        memory.check_fits(what, needed, lower)
