"""What every block kind is: a frozen dataclass of its arguments plus the rules that only it knows.

A kind's fields are the block's arguments, named in words; field order is the YAML order. Beside
them each kind states, as methods, everything the rest of nas needs to know about it without torch:

- ``output_channels(cin)`` and ``output_size(h, w)``: what it turns a (cin, h, w) input into;
- ``has_residual(cin)``: whether it adds an identity (and so takes a drop-path rate);
- ``check(where, cin)``: the checks that need its input channels (its fields are checked by
  :mod:`nas.spec.validation`, by field name, before this runs);
- ``tally(t, cin, h, w)``: its params, FLOPs and MAC, layer by layer, into a :class:`LayerTally`
  (``nas.cost.Tally``). It mirrors the block's torch module in ``nas/blocks``; tests check the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..geometry import same_padding_out


class LayerTally(Protocol):
    """What a kind's ``tally`` writes to: ``nas.cost.Tally``, one call per layer."""

    def conv(self, cin: int, cout: int, kernel: int, h: int, w: int, stride: int = 1, groups: int = 1,
             bias: bool = False, norm: bool = True, activation: str = "none", dilation: int = 1,
             padding: int | None = None) -> tuple[int, int]: ...

    def norm(self, channels: int) -> None: ...

    def activation(self, name: str, channels: int) -> None: ...

    def squeeze_excite(self, channels: int, squeezed: int, activation: str = "none") -> None: ...


@dataclass(frozen=True)
class Block:
    kind: ClassVar[str] = ""
    #: fields scaled by the width multiplier (and required in YAML)
    channel_fields: ClassVar[tuple[str, ...]] = ("out_channels",)
    #: False for blocks without weights (pooling): the depth multiplier never repeats them.
    scales_with_depth: ClassVar[bool] = True

    def output_channels(self, cin: int) -> int:
        return self.out_channels  # type: ignore[attr-defined]  # every kind but MaxPool has the field

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Odd kernels with 'same' padding: only the stride shrinks the map. Kinds that pool say otherwise."""
        return same_padding_out(h, w, self.stride)  # type: ignore[attr-defined]

    def has_residual(self, cin: int) -> bool:
        return False

    def check(self, where: str, cin: int) -> None:
        """Raise SpecError if the block cannot take ``cin`` input channels."""

    def check_image(self, where: str, image_channels: int) -> None:
        """Raise SpecError if the block reads the network's input image and cannot take ``image_channels``."""

    def tally(self, t: LayerTally, cin: int, h: int, w: int) -> None:
        raise NotImplementedError(f"block kind {self.kind!r} has no cost tally")
