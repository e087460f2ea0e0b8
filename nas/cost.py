"""Exact cost of a spec without building it: parameters, FLOPs (multiply-adds) and memory access cost.

Conventions (DESIGN.md):
- params: every weight the built model has, exactly ``sum(p.numel() for p in model.parameters())``
  (conv and linear weights and biases, batch-norm scale and shift, PReLU slopes).
- FLOPs: multiply-adds of convolution and linear layers only, at the spec's resolution and batch 1;
  equal to ``torch.utils.flop_counter.FlopCounterMode`` total / 2 on the built model. Bias adds, batch
  norm, activations, pooling, residual adds and the SE gate's multiply are not counted.
- MAC (memory access cost, ShuffleNetV2 / VoVNet): for each convolution and linear layer, the elements
  it reads and writes: input feature map + output feature map + weights,
  ``h_in*w_in*c_in + h_out*w_out*c_out + k*k*c_in*c_out/groups``. Pooling, concatenation and element-wise
  ops are not counted. In elements, not bytes (multiply by the dtype size for bytes).

Each block kind has one function below mirroring its module in ``nas/blocks``; tests check that the
two agree for every zoo architecture and for random specs. This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .spec import (EESP, OSA, Block, Conv, Fire, MaxPool, MBConv, Resolved, Separable, Shuffle, Spec,
                   block_out_size, conv_out, resolve)


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
        self.params += weights + (cout if bias else 0) + (2 * cout if norm else 0) + (cout if activation == "prelu" else 0)
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


def se_channels(in_channels: int, se_ratio: float) -> int:
    """Squeeze width: relative to the block's *input* channels (EfficientNet / MnasNet)."""
    return max(1, int(in_channels * se_ratio))


def mbconv_mid_channels(in_channels: int, expansion: float) -> int:
    return int(round(in_channels * expansion))


# -- one function per block kind: (tally, block, in_channels, h, w) -> None -------------------

def _conv(t: Tally, b: Conv, cin: int, h: int, w: int) -> None:
    groups = cin if b.depthwise else b.groups
    t.conv(cin, b.out_channels, b.kernel, h, w, b.stride, groups, b.bias, b.batch_norm, b.activation,
           padding=b.padding)


def _maxpool(t: Tally, b: MaxPool, cin: int, h: int, w: int) -> None:
    pass


def _mbconv(t: Tally, b: MBConv, cin: int, h: int, w: int) -> None:
    mid = mbconv_mid_channels(cin, b.expansion)
    if mid != cin:
        t.conv(cin, mid, 1, h, w, activation=b.activation)
    h, w = t.conv(mid, mid, b.kernel, h, w, b.stride, groups=mid, activation=b.activation)
    if b.se_ratio > 0:
        t.squeeze_excite(mid, se_channels(cin, b.se_ratio), b.activation)
    t.conv(mid, b.out_channels, 1, h, w)


def _separable(t: Tally, b: Separable, cin: int, h: int, w: int) -> None:
    h, w = t.conv(cin, cin, b.kernel, h, w, b.stride, groups=cin, activation=b.activation)
    if b.se_ratio > 0:
        # PP-LCNet's SE (h-swish blocks) has ReLU inside; otherwise the block's activation (blocks/separable.py)
        t.squeeze_excite(cin, se_channels(cin, b.se_ratio), "relu" if b.activation == "hswish" else b.activation)
    t.conv(cin, b.out_channels, 1, h, w, activation=b.activation if b.pointwise_activation else "none")


def _osa(t: Tally, b: OSA, cin: int, h: int, w: int) -> None:
    if b.stride == 2:  # the max-pool in front: no weights, not counted, but every layer sees its output
        h, w = conv_out(h, 3, 2, 0, 1, True), conv_out(w, 3, 2, 0, 1, True)
    channels = cin
    if b.depthwise and cin != b.stage_channels:  # slim-dw: one 1x1 reduction so the depthwise layers fit
        t.conv(cin, b.stage_channels, 1, h, w, activation=b.activation)
        channels = b.stage_channels
    for _ in range(b.layers):
        if b.depthwise:  # VoVNetV2 dw_conv3x3: depthwise kxk without norm, then 1x1-BN-act
            t.conv(channels, channels, b.kernel, h, w, groups=channels, norm=False)
            t.conv(channels, b.stage_channels, 1, h, w, activation=b.activation)
        else:
            t.conv(channels, b.stage_channels, b.kernel, h, w, activation=b.activation)
        channels = b.stage_channels
    # aggregation of the (unreduced) input and every layer's output; concatenation itself is free
    t.conv(cin + b.layers * b.stage_channels, b.out_channels, 1, h, w, activation=b.activation)
    if b.ese:  # eSE: one 1x1 conv with bias on the 1x1 pooled map; the gate's multiply is not counted
        t.conv(b.out_channels, b.out_channels, 1, 1, 1, bias=True, norm=False)


def eesp_dilations(branches: int, receptive_limit: int) -> list[int]:
    """ESPNetv2: branch i has a 3x3 kernel dilated to receptive field 3 + 2i, falling back to 3 (dilation 1)
    past ``receptive_limit``; sorted ascending. Receptive field r of a dilated 3x3 means dilation (r - 1) / 2."""
    fields_ = sorted(3 + 2 * i if 3 + 2 * i <= receptive_limit else 3 for i in range(branches))
    return [(r - 1) // 2 for r in fields_]


def _eesp(t: Tally, b: EESP, cin: int, h: int, w: int) -> None:
    """Mirrors nas/blocks/eesp.py: the EESP transform, then (stride 1) the unit's PReLU, or (stride 2) the
    down-sampler's input reinforcement and PReLU. Pooling, concatenation and adds cost nothing here."""
    k = b.branches
    produced = b.out_channels - cin if b.stride == 2 else b.out_channels  # stride 2: the pooled input fills the rest
    n = produced // k
    t.conv(cin, n, 1, h, w, groups=k, activation=b.activation)            # grouped 1x1 reduce
    oh, ow = h, w
    for d in eesp_dilations(k, b.receptive_limit):                          # depthwise dilated branches, no BN
        oh, ow = t.conv(n, n, 3, h, w, b.stride, groups=n, norm=False, dilation=d)
    t.norm(produced)                                                        # BN + act after the concat
    t.activation(b.activation, produced)
    t.conv(produced, produced, 1, oh, ow, groups=k)                         # grouped 1x1 expand (+BN)
    if b.stride == 2 and b.input_reinforcement:  # on the image, average-pooled down to this block's output size
        image = EESP.image_channels
        t.conv(image, image, 3, oh, ow, activation=b.activation)
        t.conv(image, b.out_channels, 1, oh, ow)
    t.activation(b.activation, b.out_channels)


def _fire(t: Tally, b: Fire, cin: int, h: int, w: int) -> None:
    if b.stride == 2:
        h, w = conv_out(h, 3, 2, 0, 1, True), conv_out(w, 3, 2, 0, 1, True)
    s, half = b.squeeze_channels, b.out_channels // 2
    t.conv(cin, s, 1, h, w, bias=True, norm=False, activation=b.activation)
    t.conv(s, half, 1, h, w, bias=True, norm=False, activation=b.activation)
    t.conv(s, half, 3, h, w, bias=True, norm=False, activation=b.activation)


def _shuffle(t: Tally, b: Shuffle, cin: int, h: int, w: int) -> None:
    half = b.out_channels // 2
    if b.stride == 2:  # branch 1: depthwise down-sampling, 1x1
        oh, ow = t.conv(cin, cin, b.kernel, h, w, 2, groups=cin)
        t.conv(cin, half, 1, oh, ow, activation=b.activation)
        branch_in = cin
    else:
        branch_in = half
    t.conv(branch_in, half, 1, h, w, activation=b.activation)  # branch 2: 1x1, depthwise, 1x1
    oh, ow = t.conv(half, half, b.kernel, h, w, b.stride, groups=half)
    t.conv(half, half, 1, oh, ow, activation=b.activation)


BLOCK_COST = {
    "conv": _conv, "maxpool": _maxpool, "mbconv": _mbconv, "separable": _separable, "osa": _osa,
    "eesp": _eesp, "fire": _fire, "shuffle": _shuffle,
}


@lru_cache(maxsize=65536)
def block_cost(block: Block, in_channels: int, h: int, w: int) -> tuple[int, int, int]:
    """(params, flops, mac) of one block on a (in_channels, h, w) input. Cached: searches repeat blocks."""
    t = Tally()
    BLOCK_COST[block.kind](t, block, in_channels, h, w)
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
        from dataclasses import replace
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
        acc["out_channels"] = rb.block.out_channels if hasattr(rb.block, "out_channels") else rb.in_channels
    if acc:
        rows.append(StageCost(**acc))
    rows.append(StageCost("head", r.spec.head.kind, 1, r.spec.num_classes, (1, 1), *head_cost(r)))
    return tuple(rows)


__all__ = ["Cost", "StageCost", "Tally", "count_cost", "block_cost", "head_cost", "se_channels",
           "mbconv_mid_channels", "eesp_dilations", "BLOCK_COST", "block_out_size"]
