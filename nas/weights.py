"""Weights from another implementation of the same architecture (timm, torchvision, a hand-written model).

Two implementations of one network name their tensors differently (``blocks.1.0.conv_pw.weight`` in
timm, ``blocks.2.expand.0.weight`` here) but, when both register their layers in the order the data flow
through them, list the same tensors in the same order. So the transfer pairs the source's state_dict
with the target's *by position*, checks every pair's shape, and stops at the first pair that does not
fit with one line naming both tensors and both shapes. ``num_batches_tracked`` counters are skipped on
both sides: they are bookkeeping, absent from some ports, and play no part in the forward pass.

Matching shapes are necessary, not sufficient (padding, activations, SE details must match too): after a
transfer, compare the outputs of both models on one batch (docs/weights.md shows how).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import UserError
from .folders import check_output_file
from .io import write_with

SKIPPED = ("num_batches_tracked",)


def _tensors(state: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(name, value) for name, value in state.items()
            if isinstance(value, torch.Tensor) and name.rsplit(".", 1)[-1] not in SKIPPED]


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(size) for size in tensor.shape) or "scalar"


def transfer_by_order(source: Mapping[str, torch.Tensor], target: nn.Module) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s state_dict names, paired by position, shapes checked.

    Returns a full state_dict for ``target`` (its own ``num_batches_tracked`` kept); load it with
    ``target.load_state_dict(...)``. Raises UserError at the first pair whose shapes differ, or when one
    side has tensors left over.
    """
    theirs, ours = _tensors(source), _tensors(target.state_dict())
    renamed = dict(target.state_dict())
    for index, ((their_name, their_tensor), (our_name, our_tensor)) in enumerate(zip(theirs, ours)):
        if their_tensor.shape != our_tensor.shape:
            raise UserError(f"weights: tensor {index}: source {their_name} ({_shape(their_tensor)}) does not fit "
                            f"{our_name} ({_shape(our_tensor)}); allowed: the same architecture, tensor for tensor "
                            f"in the same order")
        renamed[our_name] = their_tensor.detach().to(dtype=our_tensor.dtype).clone()
    if len(theirs) != len(ours):
        longer, side = (theirs, "source") if len(theirs) > len(ours) else (ours, "target")
        first, tensor = longer[min(len(theirs), len(ours))]
        raise UserError(f"weights: the source has {len(theirs)} tensors and the target {len(ours)}; the first "
                        f"unmatched is the {side}'s {first} ({_shape(tensor)}); allowed: the same architecture")
    return renamed


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict saved with torch.save, read with weights_only=True (nothing else is unpickled); a
    training checkpoint that wraps it under ``state_dict`` or ``model`` is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights: got {str(path)!r}; allowed: an existing .pt file holding a state_dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"weights: {path} is not a readable torch.save file of tensors "
                        f"({type(exc).__name__}); allowed: torch.save(model.state_dict(), path)") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not _tensors(state):
        raise UserError(f"weights: {path} holds no state_dict; allowed: torch.save(model.state_dict(), path)")
    return state


def import_weights(source_path: str | Path, spec_source: str, out_path: str | Path) -> Path:
    """``nas weights import``: a foreign state_dict file -> a state_dict for ``build_model(spec)``."""
    from .build import build_model
    from .zoo import load_spec

    check_output_file("-o", out_path, "a new or writable .pt file in a folder you can write to")
    source = load_state_dict_file(source_path)
    model = build_model(load_spec(spec_source))
    state = transfer_by_order(source, model)
    model.load_state_dict(state)  # proves it loads
    return write_with(out_path, lambda fh: torch.save(state, fh), binary=True)
