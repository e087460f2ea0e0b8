"""A training run's state after an epoch, saved so that a killed run resumes exactly where it stopped.

What "exactly" needs: the model, its EMA, the optimizer (momentum / Adam moments), the scheduler's step,
every random-number generator that training draws from (torch's global one for dropout and drop-path,
CUDA's, numpy's, Python's) and the generator of the data order and augmentation. On CPU with the same
thread count the resumed run is then bit-for-bit the uninterrupted one.

The file is written whole or not at all (nas.io.write_with) and read back with ``torch.load(...,
weights_only=True)``: tensors, numbers, strings, lists and dicts only, never arbitrary pickled objects,
so numpy's generator state is stored as a tensor rather than an ndarray.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..io import write_with

FORMAT = 1


def capture_rng(data_generator: torch.Generator) -> dict:
    """Every generator's state, in a form ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"bit_generator": numpy_state["bit_generator"],
                  "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]),
                  "has_gauss": int(numpy_state["has_gauss"]), "gauss": float(numpy_state["gauss"])},
        "python": random.getstate(),
        "data": data_generator.get_state(),
    }


def restore_rng(state: dict, data_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": numpy_state["bit_generator"],
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    data_generator.set_state(state["data"])


def save_checkpoint(path: Path, state: dict) -> None:
    """``state`` (tensors, numbers, strings, lists, dicts) into ``path``, atomically."""
    write_with(path, lambda fh: torch.save({"format": FORMAT, **state}, fh), binary=True)


def load_checkpoint(path: Path, say: Callable[[str], None] = print) -> dict | None:
    """The saved state, or None when there is none. An unreadable file (another program's, a disk error)
    is set aside as ``<name>.unreadable`` and never built upon; the run then starts from scratch."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"not a nas checkpoint of format {FORMAT}")
    except Exception as exc:  # noqa: BLE001 - any failure to read means: do not resume from it
        aside = path.with_name(path.name + ".unreadable")
        path.replace(aside)
        say(f"nas: warning: {path} is unreadable ({type(exc).__name__}); set aside as {aside.name}, starting over")
        return None
    return state
