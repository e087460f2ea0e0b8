"""Mistakes that would fail every trial, caught before the first one (one line, exit 2).

- the device: ``device=cuda`` (or latency measured on cuda) on a machine without a CUDA device;
- the space at the proxy resolution: candidates sampled from the space must build at the side the proxy
  trains at (a stride-4 stem and max-pools make an 8 px map vanish). When every sampled candidate fails, the
  space cannot be searched on that data set; the line says what to change.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..errors import SpecError, UserError
from ..settings import SearchConfig
from ..space import load_space, needed_resolution, smallest_resolution
from ..spec import Spec, replace, resolve

#: The side each built-in data set's images have (an image folder: resolution=, else 32).
NATIVE_RESOLUTION = {"digits": 8, "fashion-mnist": 28, "fashion-mnist-full": 28, "cifar10": 32, "cifar100": 32}
SAMPLED_CANDIDATES = 32


def proxy_resolution(config: SearchConfig) -> int:
    """The side the proxy trains at: resolution=, else the data set's own, or more where the space needs it
    (as nas.search.evaluation.configured_data loads it)."""
    if config.resolution:
        return config.resolution
    return max(_data_side(config), needed_resolution(load_space(config.space)))


def undeclared_resolution(config: SearchConfig) -> int:
    """The side proxy_resolution gives a space that declares no proxy_resolution: what a run made before nas stored
    its side (nas.search.run_folder.TRAINED_SIDE) trained at, unless its space declared one then."""
    return max(_data_side(config), smallest_resolution(load_space(config.space)))


def _data_side(config: SearchConfig) -> int:
    return NATIVE_RESOLUTION.get(config.dataset, 32)


def check_device(config: SearchConfig) -> None:
    """A UserError line when the settings ask for a CUDA device this machine does not have."""
    if config.train.device == "cuda":
        key, other = "device", "auto or cpu"
    elif config.objective == "latency" and config.latency_device == "cuda":
        key, other = "latency_device", "cpu"
    else:
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"{key}: got 'cuda', but there is no CUDA device here; allowed: {other}")


def check_candidates(propose: Callable[[Callable], Spec], resolution: int, seed: int,
                     samples: int = SAMPLED_CANDIDATES) -> None:
    """Resolve ``samples`` random candidates at the proxy ``resolution`` (torch-free, milliseconds); a UserError
    line with the first error when none of them builds."""
    rng = random.Random(seed)
    first: SpecError | None = None
    for _ in range(samples):
        try:
            resolve(replace(propose(lambda name, options: rng.choice(options)), resolution=resolution))
            return
        except SpecError as exc:
            first = first or exc
    raise UserError(f"resolution: none of {samples} candidates sampled from the space builds at the proxy's "
                    f"{resolution} px ({first}); allowed: a larger resolution= or a data set with larger images")
