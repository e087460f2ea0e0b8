"""Predicted latency: a per-device table of measured block latencies, summed over a spec's blocks.

Each entry is one block (or the head) timed alone on a random input of its shape: its dataclass (kind,
kernel, stride, groups, expansion, SE ratio, ...), input channels, input size and batch are the key, so
a convolution, depthwise-separable layer, MBConv with or without SE, pooling layer or linear head that
recurs across candidates is timed once. Blocks, not single layers, are the unit: fewer entries to time,
and a block's residual adds, concatenations and activations are counted where they run (the issue
allows either; a per-layer table was not tried).

A spec's prediction = the sum of its entries + a per-network overhead proportional to its parameters,
fitted on a few whole networks. Timed alone and repeated, a block finds its weights (and its input) in
the caches; inside a network the other blocks have pushed them out, so each pass reads them from memory
again: about 0.5 ms per million parameters on one EPYC thread, 25-35 % of an mnas sample at 112 px. On
the bench's networks a constant overhead left a median error of 10-11 %, this one about 8 %; flushing
the caches before each timed pass predicted worse than either.

The overhead is the ratio of sums over the timed networks, sum(measured - blocks' sum) / sum(params),
never below zero, and it counts as fitted once OVERHEAD_NETWORKS networks are timed (`calibrated`). One
network is not a fit: on this shared 2-core VM a whole-network reading moves 10-50 % between minutes,
so single-network rates ran from -0.9 to +1.2 ms per million at 224 px, and a search whose rate came
from its first large candidate mispredicted its winners by -42 % and +25 % (bench/flops_vs_latency).
A search therefore calibrates before its first prediction (`calibrate`, on samples of its own space)
and then predicts with that rate fixed: every trial's cost has the same meaning. Only networks of at
least FIT_MIN_PARAMS parameters fit: a small network's weights stay in cache (there is no overhead to
fit), and a fit on one 80k-parameter network on a loaded machine once gave -5 ms per million.

One table per device fingerprint (CPU model and torch threads, or GPU name; plus the torch version),
kept as JSON in the cache directory and written whole via nas.io. Several processes share it (a
search's workers, `nas latency build`): a save merges what another stored since this holder loaded it,
entries and timed networks, under the file's lock (`LatencyTable.save`). A corrupt file is ignored with
a one-line warning and rebuilt over it. An entry that is missing is timed on demand.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..blocks import build_block
from ..build import Head
from ..cost import count_cost
from ..io import updating, write_text
from ..spec import Resolved, ResolvedBlock, Spec, dumps, resolve, with_overrides
from .device_lock import cache_dir
from .latency import (
    DEFAULT_THREADS,
    check_count,
    cpu_model,
    measure_latency,
    time_call,
    torch_device,
)
from .memory import check_fits, forward_pass_bytes

FORMAT = 2
LAYER_WARMUP, LAYER_REPEATS = 3, 20   # per table entry; an entry is timed once per device
OVERHEAD_NETWORKS = 5                 # whole networks timed to fit the overhead
FIT_MIN_PARAMS = 1_000_000            # 4 MB of float32 weights: more than a core's L2 cache holds


def device_fingerprint(device: str = "cpu", threads: int = DEFAULT_THREADS) -> str:
    """What a table's figures hold for: the CPU model and thread count, or the GPU's name; and the torch build."""
    target = torch_device(device, "latency device")
    if target.type == "cuda":
        return f"{torch.cuda.get_device_name(target)}, torch {torch.__version__}"
    return f"{cpu_model()} CPU, {threads} threads, torch {torch.__version__}"


def table_path(fingerprint: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", fingerprint).strip("-")[:60]
    digest = hashlib.sha1(fingerprint.encode()).hexdigest()[:8]
    return cache_dir() / "latency-tables" / f"{slug}-{digest}.json"


@dataclass
class LatencyTable:
    device: str                      # "cpu" or "cuda:0"
    threads: int
    fingerprint: str
    path: Path
    entries: dict[str, float] = field(default_factory=dict)         # layer key -> median ms
    networks: list[list[float]] = field(default_factory=list)   # [measured ms, sum of entries ms, params] each

    def fit_networks(self) -> list[list[float]]:
        """The timed networks large enough to fit the overhead (at least FIT_MIN_PARAMS parameters)."""
        return [network for network in self.networks if network[2] >= FIT_MIN_PARAMS]

    @property
    def calibrated(self) -> bool:
        """Whether the overhead rests on OVERHEAD_NETWORKS networks, so no prediction times another one."""
        return len(self.fit_networks()) >= OVERHEAD_NETWORKS

    @property
    def ms_per_mparam(self) -> float | None:
        """The fitted overhead: milliseconds a network adds to its blocks' sum per million parameters, as
        the ratio of sums over the fitting networks (a large network weighs more than a small one's noise);
        never negative; None until a network of at least FIT_MIN_PARAMS parameters has been timed."""
        fitting = self.fit_networks()
        if not fitting:
            return None
        missing_ms = sum(measured - summed for measured, summed, _ in fitting)
        return max(0.0, missing_ms / (sum(params for _, _, params in fitting) / 1e6))

    def merge_stored(self) -> None:
        """Take in what another process stored since this table was loaded (same device, same figures): its
        entries, and the networks it timed, ahead of this table's own new ones. Without the networks a
        holder that loaded the table before another process calibrated it (`nas latency build` beside a
        search) would erase that calibration when it saves, and a search would change its overhead."""
        stored_entries, stored_networks = _read(self.path, self.fingerprint, quiet=True)
        self.entries = {**stored_entries, **self.entries}
        self.networks = stored_networks + [network for network in self.networks if network not in stored_networks]

    def save(self) -> Path:
        """Write the table with what others stored meanwhile merged in, under the file's lock (no other
        process writes between the read and the write)."""
        with updating(self.path):
            self.merge_stored()
            data = {"format": FORMAT, "fingerprint": self.fingerprint, "entries": self.entries,
                    "networks": self.networks}
            return write_text(self.path, json.dumps(data, indent=0, sort_keys=True) + "\n")


def _read(path: Path, fingerprint: str, quiet: bool = False) -> tuple[dict, list]:
    """A stored table's entries and networks; empty when there is none or it is unusable (warned about once)."""
    if not path.exists():
        return {}, []
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT or data.get("fingerprint") != fingerprint:
            raise ValueError("it was written by another version or for another device")
        entries = {str(k): float(v) for k, v in data["entries"].items()}
        networks = [[float(m), float(s), float(p)] for m, s, p in data["networks"]]
        return entries, networks
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not quiet:
            print(f"nas: warning: latency table {path} is unreadable ({reason}); rebuilding it", file=sys.stderr)
        return {}, []


def load_table(device: str = "cpu", threads: int = DEFAULT_THREADS) -> LatencyTable:
    """This device's table (empty when none is stored yet)."""
    threads = check_count("threads", threads, 1)
    target = str(torch_device(device, "latency device"))
    fingerprint = device_fingerprint(target, threads)
    path = table_path(fingerprint)
    entries, networks = _read(path, fingerprint)
    return LatencyTable(target, threads, fingerprint, path, entries, networks)


# -- what a spec is made of --------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """One table entry of a spec: its key and how to build it with an input to time it on."""

    key: str
    make: Callable[[], tuple[torch.nn.Module, tuple[torch.Tensor, ...]]]


def _block_layer(rb: ResolvedBlock, spec: Spec, batch: int) -> Layer:
    h, w = rb.in_size
    key = f"{rb.block!r} in={rb.in_channels}x{h}x{w} batch={batch}"

    def make():
        module = build_block(rb.block, rb.in_channels)
        x = torch.randn(batch, rb.in_channels, h, w)
        if getattr(module, "takes_image", False):  # ESPNetv2's input reinforcement also reads the image
            image = torch.randn(batch, spec.in_channels, spec.resolution, spec.resolution)
            return module, (x, image)
        return module, (x,)
    if getattr(rb.block, "input_reinforcement", False):
        key += f" image={spec.in_channels}x{spec.resolution}"
    return Layer(key, make)


def _head_layer(resolved: Resolved, batch: int) -> Layer:
    spec, (h, w) = resolved.spec, resolved.final_size
    head = spec.head
    key = (f"Head(kind={head.kind!r}, channels={resolved.head_channels}, activation={head.activation!r}, "
           f"classes={spec.num_classes}) in={resolved.head_in_channels}x{h}x{w} batch={batch}")

    def make():
        module = Head(head, resolved.head_in_channels, resolved.head_channels, spec.num_classes)
        return module, (torch.randn(batch, resolved.head_in_channels, h, w),)
    return Layer(key, make)


def spec_layers(spec: Spec, batch: int = 1) -> list[Layer]:
    """The table entries ``spec`` sums over: each resolved block (stem included), then the head."""
    resolved = resolve(spec)
    return [_block_layer(rb, spec, batch) for rb in resolved.blocks] + [_head_layer(resolved, batch)]


def time_layer(layer: Layer, device: str, threads: int) -> float:
    """Median ms of one block alone, laid out as in a measured network (channels_last on CPU)."""
    target = torch_device(device, "latency device")
    layout = torch.channels_last if target.type == "cpu" else torch.contiguous_format
    module, inputs = layer.make()
    module = module.eval().to(target, memory_format=layout)
    inputs = tuple(t.to(target).contiguous(memory_format=layout) for t in inputs)
    times = time_call(lambda: module(*inputs), target, threads, LAYER_WARMUP, LAYER_REPEATS)
    return statistics.median(times)


# -- filling and predicting --------------------------------------------------------------------

def _progress(items: list, enabled: bool, desc: str):
    if not (enabled and sys.stderr.isatty()):  # no bar frames in a log file
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="layer", file=sys.stderr)


def fill(table: LatencyTable, specs: Iterable[Spec], batch: int = 1, progress: bool = False,
         overhead_networks: int = OVERHEAD_NETWORKS) -> int:
    """Time every entry of ``specs`` the table lacks, then fit the overhead on up to ``overhead_networks``
    whole networks (more than it has). Saves the table; returns how many entries were timed."""
    specs = list(specs)
    missing = {}
    for spec in specs:
        for layer in spec_layers(spec, batch):
            if layer.key not in table.entries:
                missing.setdefault(layer.key, layer)
    for layer in _progress(list(missing.values()), progress, f"timing layers on {table.fingerprint}"):
        table.entries[layer.key] = time_layer(layer, table.device, table.threads)
    large = [spec for spec in specs if count_cost(spec).params >= FIT_MIN_PARAMS]  # only these fit the overhead
    if large:
        table.merge_stored()  # networks another process timed meanwhile count: calibrate once, not twice
    for spec in large[:max(0, overhead_networks - len(table.fit_networks()))]:
        measured = measure_latency(spec, device=table.device, batch=batch, threads=table.threads).median_ms
        table.networks.append([measured, _sum(table, spec, batch), count_cost(spec).params])
    table.save()
    return len(missing)


def _sum(table: LatencyTable, spec: Spec, batch: int) -> float:
    return sum(table.entries[layer.key] for layer in spec_layers(spec, batch))


def predict(table: LatencyTable, spec: Spec, batch: int = 1, resolution: int | None = None,
            fit_overhead: bool = True) -> float:
    """Predicted ms of one forward pass of ``spec``; missing entries are timed now. With ``fit_overhead``
    a large network is also timed whole while the table is not yet calibrated (the overhead then moves
    from call to call: a search calibrates first and passes False). Until a fit the overhead is zero."""
    if resolution is not None:
        spec = with_overrides(spec, resolution=resolution)
    params = count_cost(spec).params
    try:
        total = _sum(table, spec, batch)
    except KeyError:
        fill(table, [spec], batch, overhead_networks=0)
        total = _sum(table, spec, batch)
    if fit_overhead and not table.calibrated and params >= FIT_MIN_PARAMS and not _timed_whole(table, spec, batch):
        fill(table, [spec], batch, overhead_networks=len(table.fit_networks()) + 1)
    return total + (table.ms_per_mparam or 0.0) * params / 1e6


def _timed_whole(table: LatencyTable, spec: Spec, batch: int) -> bool:
    """Whether a network with this spec's blocks' sum and parameters is among the timed ones already."""
    summed, params = _sum(table, spec, batch), count_cost(spec).params
    return any(s == summed and p == params for _, s, p in table.networks)


def calibrate(table: LatencyTable, candidates: Iterable[Spec], batch: int = 1, progress: bool = False) -> int:
    """Fit the overhead before predicting: time whole networks from ``candidates`` (in order, distinct,
    large enough) until the table holds OVERHEAD_NETWORKS of them. A search passes samples of its own
    space, so the rate is fitted on networks like the ones it predicts. Returns how many were timed; fewer
    than needed when ``candidates`` run out (the rate then rests on those)."""
    before = len(table.networks)
    chosen, seen = [], set()
    for spec in candidates:
        if len(table.fit_networks()) + len(chosen) >= OVERHEAD_NETWORKS:
            break
        key = dumps(spec)
        if key in seen or count_cost(spec).params < FIT_MIN_PARAMS:
            continue
        seen.add(key)
        chosen.append(spec)
    if chosen:
        fill(table, chosen, batch, progress=progress, overhead_networks=OVERHEAD_NETWORKS)
    return len(table.networks) - before


def predict_latency(spec: Spec, device: str = "cpu", threads: int = DEFAULT_THREADS, batch: int = 1,
                    resolution: int | None = None) -> float:
    """One-shot prediction (loads the table each call; hold a LatencyTable to predict many)."""
    return predict(load_table(device, threads), spec, batch, resolution)


def build_table(space: str | None = None, specs: Iterable[Spec] = (), device: str = "cpu",
                threads: int = DEFAULT_THREADS, samples: int = 20, resolution: int | None = None,
                progress: bool = True) -> tuple[LatencyTable, int]:
    """`nas latency build`: fill this device's table for ``specs`` and/or ``samples`` specs sampled from
    ``space`` (seeds 0..samples-1), at ``resolution`` if given. Returns the table and the entries timed."""
    from ..space import load_space, random_choices, sample

    chosen = list(specs)
    if space is not None:
        loaded = load_space(space)
        chosen += [sample(loaded, random_choices(seed)) for seed in range(check_count("--samples", samples, 1))]
    if resolution is not None:
        chosen = [with_overrides(spec, resolution=check_count("--resolution", resolution, 8)) for spec in chosen]
    table = load_table(device, threads)
    for spec in chosen:  # refused before any layer's input is allocated
        check_fits(f"latency build of {spec.name}", forward_pass_bytes(spec, 1), device, "--resolution")
    return table, fill(table, chosen, progress=progress)


__all__ = ["LatencyTable", "build_table", "calibrate", "device_fingerprint", "fill", "load_table", "predict",
           "predict_latency", "spec_layers", "time_layer"]
