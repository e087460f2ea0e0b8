"""Exact cost of a spec without building it: parameters, FLOPs (multiply-adds) and memory access cost.

Conventions (the README's "Cost conventions"; the same for every block kind):
- params: every weight the built model has, exactly ``sum(p.numel() for p in model.parameters())``
  (conv and linear weights and biases, batch-norm scale and shift, PReLU slopes).
- FLOPs: multiply-adds of convolution and linear layers only, at the spec's resolution and batch 1;
  equal to ``torch.utils.flop_counter.FlopCounterMode`` total / 2 on the built model. Bias adds, batch
  norm, activations, pooling, residual adds and the SE gate's multiply are not counted.
- MAC (memory access cost, ShuffleNetV2 / VoVNet): for each convolution and linear layer, the elements
  it reads and writes: input feature map + output feature map + weights,
  ``h_in*w_in*c_in + h_out*w_out*c_out + k*k*c_in*c_out/groups``. Pooling, concatenation and element-wise
  ops are not counted. In elements, not bytes (multiply by the dtype size for bytes).

Each block kind tallies its own layers (``Block.tally`` in ``nas/spec/kinds``), mirroring its module in
``nas/blocks``; tests check that the two agree for every zoo architecture and for random specs. This
module holds the tally, the network's sum, the head and the per-stage table. It imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .spec import Block, Resolved, Spec, conv_out, replace, resolve


class Tally:
    """Accumulates params, FLOPs and MAC layer by layer."""

    __slots__ = ("params", "flops", "mac")

    def __init__(self):
        self.params = self.flops = self.mac = 0

    def conv(self, cin: int, cout: int, kernel: int, h: int, w: int, stride: int = 1, groups: int = 1,
             bias: bool = False, norm: bool = True, activation: str = "none", dilation: int = 1,
             padding: int | None = None) -> tuple[int, int]:
        """A conv (+ batch norm) (+ activation) on an h x w input; returns the output size."""
        pad = dilation * (kernel - 1) // 2 if padding is None else padding
        oh, ow = conv_out(h, kernel, stride, pad, dilation), conv_out(w, kernel, stride, pad, dilation)
        weights = kernel * kernel * (cin // groups) * cout
        extra = (cout if bias else 0) + (2 * cout if norm else 0) + (cout if activation == "prelu" else 0)
        self.params += weights + extra
        self.flops += oh * ow * weights
        self.mac += h * w * cin + oh * ow * cout + weights
        return oh, ow

    def linear(self, cin: int, cout: int, bias: bool = True) -> None:
        self.params += cin * cout + (cout if bias else 0)
        self.flops += cin * cout
        self.mac += cin + cout + cin * cout

    def norm(self, channels: int) -> None:
        self.params += 2 * channels

    def activation(self, name: str, channels: int) -> None:
        if name == "prelu":
            self.params += channels

    def squeeze_excite(self, channels: int, squeezed: int, activation: str = "none") -> None:
        """SE on a ``channels`` map: pool, 1x1 to ``squeezed`` with bias, ``activation``, 1x1 back with bias, gate.

        ``activation`` is the SE's inner one; only PReLU has weights (one per squeezed channel).
        """
        self.conv(channels, squeezed, 1, 1, 1, bias=True, norm=False, activation=activation)
        self.conv(squeezed, channels, 1, 1, 1, bias=True, norm=False)


@lru_cache(maxsize=65536)
def block_cost(block: Block, in_channels: int, h: int, w: int) -> tuple[int, int, int]:
    """(params, flops, mac) of one block on a (in_channels, h, w) input. Cached: searches repeat blocks."""
    t = Tally()
    block.tally(t, in_channels, h, w)
    return t.params, t.flops, t.mac


def head_cost(r: Resolved) -> tuple[int, int, int]:
    head, spec = r.spec.head, r.spec
    t = Tally()
    cin, (h, w) = r.head_in_channels, r.final_size
    if head.kind == "conv_pool_linear":
        if r.head_channels:
            t.conv(cin, r.head_channels, 1, h, w, activation=head.activation)
            cin = r.head_channels
        t.linear(cin, spec.num_classes)
    elif head.kind == "pool_conv_linear":
        t.conv(cin, r.head_channels, 1, 1, 1, bias=False, norm=False, activation=head.activation)
        t.linear(r.head_channels, spec.num_classes)
    else:  # conv_classifier
        t.conv(cin, spec.num_classes, 1, h, w, bias=True, norm=False, activation=head.activation)
    return t.params, t.flops, t.mac


@dataclass(frozen=True)
class StageCost:
    name: str            # "stem", "stage 3", "head"
    kind: str            # block kind(s)
    repeats: int
    out_channels: int
    out_size: tuple[int, int]
    params: int
    flops: int
    mac: int


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int           # multiply-adds
    mac: int             # elements read and written by conv / linear layers
    resolution: int
    stages: tuple[StageCost, ...] = ()


def count_cost(spec: Spec, resolution: int | None = None, per_stage: bool = False) -> Cost:
    """Params, FLOPs (multiply-adds) and MAC of ``spec`` at its resolution (or ``resolution``).

    ``per_stage`` adds a row per stem / stage / head (what ``nas info`` prints).
    """
    if resolution is not None and resolution != spec.resolution:
        spec = replace(spec, resolution=resolution)
    r = resolve(spec)
    params = flops = mac = 0
    for rb in r.blocks:  # a plain loop: this is the hot path of a search
        p, f, m = block_cost(rb.block, rb.in_channels, rb.in_size[0], rb.in_size[1])
        params, flops, mac = params + p, flops + f, mac + m
    p, f, m = head_cost(r)
    rows = _stage_rows(r) if per_stage else ()
    return Cost(params + p, flops + f, mac + m, spec.resolution, rows)


def _stage_rows(r: Resolved) -> tuple[StageCost, ...]:
    """Sum the blocks' (params, flops, mac) into one row per stem / stage, then the head's row."""
    rows: list[StageCost] = []
    acc: dict | None = None
    for rb in r.blocks:
        p, f, m = block_cost(rb.block, rb.in_channels, rb.in_size[0], rb.in_size[1])
        name = "stem" if rb.stage < 0 else f"stage {rb.stage}"
        if acc is None or acc["name"] != name:
            if acc:
                rows.append(StageCost(**acc))
            acc = dict(name=name, kind=rb.block.kind, repeats=0, out_channels=0, out_size=rb.out_size,
                       params=0, flops=0, mac=0)
        if rb.block.kind not in acc["kind"].split("+"):
            acc["kind"] += "+" + rb.block.kind
        acc["repeats"] += 1
        acc["params"] += p
        acc["flops"] += f
        acc["mac"] += m
        acc["out_size"] = rb.out_size
        acc["out_channels"] = rb.block.output_channels(rb.in_channels)
    if acc:
        rows.append(StageCost(**acc))
    rows.append(StageCost("head", r.spec.head.kind, 1, r.spec.num_classes, (1, 1), *head_cost(r)))
    return tuple(rows)


__all__ = ["Cost", "StageCost", "Tally", "count_cost", "block_cost", "head_cost"]
