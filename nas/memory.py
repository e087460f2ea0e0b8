"""Refuse work that cannot fit in memory before allocating it (torch-free; nas.evaluate.memory adds the
estimates that need a model and the GPU's memory).

``nas info --latency --resolution 100000`` used to ask torch for a 120 GB input tensor and die with a
RuntimeError; a training resolution of 100000 asked for terabytes of resized images. The estimates only
need to tell "fits" from "absurd": one above the memory there is is refused with one line naming the
setting to lower.
"""

from __future__ import annotations

import os

from .errors import UserError


def physical_memory_bytes() -> int:
    """This machine's RAM."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(what: str, needed: int, lower: str, available: int | None = None, where: str = "this machine") -> None:
    """UserError when ``needed`` bytes exceed ``available`` (default: RAM); ``lower`` names what to reduce."""
    available = physical_memory_bytes() if available is None else available
    if needed > available:
        raise UserError(f"{what}: needs about {_gib(needed)} of memory, more than the {_gib(available)} {where} "
                        f"has; allowed: a smaller {lower}")


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n < 2**40 else f"{n / 2**40:,.0f} TiB"
