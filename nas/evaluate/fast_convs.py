"""Faster but exactly equivalent convolutions for proxy training on small images (CPU).

On an 8x8 image the later feature maps are 1x1 or 2x2, and most of a 5x5 kernel only ever meets zero
padding; oneDNN's fixed cost per conv call, not arithmetic, dominates. Two rewrites of a *built* model,
applied after building and only for proxy training, keep every output and every gradient the same:
- a conv whose kernel reaches past its input keeps only the taps that can meet a pixel (CroppedConv);
- a 1x1 conv (stride 1, one group) becomes a matrix product over channels of the channels_last map
  (PointwiseLinear).
The spec, its cost and the exported model are untouched. bench/train_throughput.py measures the gain
and checks the equivalence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _reach(size: int, kernel: int, padding: int, stride: int) -> tuple[int, int]:
    """The first and last kernel tap that meets an input pixel (not padding) at some output position."""
    out = (size + 2 * padding - kernel) // stride + 1
    used = [t for t in range(kernel) if any(0 <= o * stride + t - padding < size for o in range(out))]
    return used[0], used[-1]


def _live_weight(conv: nn.Conv2d, rows: tuple[int, int], cols: tuple[int, int]) -> nn.Parameter:
    """The conv's weight, or a new parameter of only its live taps when they are fewer."""
    if rows == (0, conv.kernel_size[0] - 1) and cols == (0, conv.kernel_size[1] - 1):
        return conv.weight
    live = conv.weight.detach()[:, :, rows[0]:rows[1] + 1, cols[0]:cols[1] + 1]
    return nn.Parameter(live.clone(memory_format=torch.channels_last))


class CroppedConv(nn.Module):
    """A conv that keeps only the kernel taps that reach its input, as its own (smaller) weight.

    The dropped taps only ever multiply zero padding: they change no output, their gradient is always zero,
    and AdamW's weight decay on them changes nothing either, so training the cropped model reaches the same
    accuracy. Padding is what remains of the original padding on each side once the dead taps are gone. A
    depthwise conv cropped to 1x1 is a per-channel multiply (after striding), which is what it computes.
    """

    def __init__(self, conv: nn.Conv2d, rows: tuple[int, int], cols: tuple[int, int]):
        super().__init__()
        self.weight, self.bias = _live_weight(conv, rows, cols), conv.bias
        self.stride, self.groups, self.window = conv.stride, conv.groups, (rows, cols)
        (kh, kw), (ph, pw) = conv.kernel_size, conv.padding
        self.pad = (pw - cols[0], pw - (kw - 1 - cols[1]), ph - rows[0], ph - (kh - 1 - rows[1]))
        self.channelwise = (self.weight.shape[-2:] == (1, 1) and not any(self.pad)
                            and conv.groups == conv.in_channels == conv.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channelwise:
            out = x[:, :, ::self.stride[0], ::self.stride[1]] * self.weight.view(1, -1, 1, 1)
            return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)
        left, right, top, bottom = self.pad
        if left == right and top == bottom:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), 1, self.groups)
        return F.conv2d(F.pad(x, self.pad), self.weight, self.bias, self.stride, 0, 1, self.groups)


class PointwiseLinear(nn.Module):
    """A 1x1 conv (stride 1, one group) as a matrix product over the channels of a channels_last map.

    A channels_last N x C x H x W tensor is an N x H x W x C one in memory, so the 1x1 conv is F.linear
    on that view: one BLAS call forward and two backward, instead of oneDNN's conv primitives, whose fixed
    cost per call dominates on small maps. Same weight, same result.
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, window=None):
        super().__init__()
        self.weight, self.bias, self.window = weight, bias, window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias)
        return out.permute(0, 3, 1, 2)


def fast_convs(model: nn.Module, example: torch.Tensor, crop: bool = True, pointwise: bool = True) -> int:
    """Swap convs for faster equivalents on ``example``'s sizes: a CroppedConv where the kernel reaches past
    the input (``crop``), a PointwiseLinear for 1x1 convs (``pointwise``). Returns how many were swapped."""
    sizes: dict[nn.Conv2d, tuple[int, int]] = {}

    def record(conv, args) -> None:
        sizes[conv] = tuple(args[0].shape[-2:])

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks = [m.register_forward_pre_hook(record) for m in convs]
    training = model.training
    with torch.no_grad():
        model.eval()(example[:2])
    model.train(training)
    for hook in hooks:
        hook.remove()
    swaps = {}
    for conv in convs:
        if (conv not in sizes or conv.dilation != (1, 1) or isinstance(conv.padding, str)
                or conv.padding_mode != "zeros"):
            continue
        full = ((0, conv.kernel_size[0] - 1), (0, conv.kernel_size[1] - 1))
        window = full
        if crop:
            window = tuple(_reach(size, k, p, s) for size, k, p, s in
                           zip(sizes[conv], conv.kernel_size, conv.padding, conv.stride))
        swapped = CroppedConv(conv, *window)
        if pointwise and swapped.weight.shape[-2:] == (1, 1) and not any(swapped.pad) \
                and conv.stride == (1, 1) and conv.groups == 1:
            swaps[conv] = PointwiseLinear(swapped.weight, conv.bias, swapped.window if window != full else None)
        elif window != full:
            swaps[conv] = swapped
    places = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
              if child in swaps]
    for parent, name, child in places:
        setattr(parent, name, swaps[child])
    return len(swaps)
