"""The spec's dict / YAML form: read (with validation), write, and the hash of what an architecture is.

The YAML form is one line per stage::

    stages:
      - {block: mbconv, repeats: 2, kernel: 3, stride: 2, expansion: 6, out_channels: 24, se_ratio: 0.25}

Fields at their default are left out, so adding a field with a default changes no existing file or hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import yaml

from .. import io
from ..errors import SpecError, did_you_mean
from .kinds import BLOCK_KINDS, Block
from .schema import Head, Spec, Stage
from .validation import MAX_CHANNELS, check_block_fields, check_repeats, check_spec_fields

_SPEC_SCALARS = ("name", "resolution", "num_classes", "in_channels", "width_multiplier", "depth_multiplier",
                 "channel_divisor", "drop_path", "batch_norm_eps", "batch_norm_momentum", "notes")
_SPEC_KEYS = _SPEC_SCALARS + ("stem", "stages", "head")
_SPEC_DEFAULTS = {f.name: f.default for f in fields(Spec)}


def _block_from_dict(data: Any, where: str, allow_repeats: bool) -> tuple[Block, int]:
    """One stem layer or stage from its YAML mapping; returns the checked block and its repeats."""
    if not isinstance(data, dict):
        raise SpecError(where, data, "a mapping such as {block: mbconv, out_channels: 24, ...}")
    data = dict(data)
    kind = data.pop("block", None)
    if not isinstance(kind, str) or kind not in BLOCK_KINDS:
        raise SpecError(f"{where}.block", kind, "one of " + ", ".join(BLOCK_KINDS) + did_you_mean(kind, BLOCK_KINDS))
    cls = BLOCK_KINDS[kind]
    repeats = data.pop("repeats", 1) if allow_repeats else 1
    check_repeats(f"{where}.repeats", repeats)
    allowed = [f.name for f in fields(cls)]
    for key in data:
        if key not in allowed:
            raise SpecError(f"{where}.{key}", data[key],
                            f"no such field for block {kind}; its fields are " + ", ".join(allowed)
                            + did_you_mean(key, allowed))
    for name in cls.channel_fields:
        if name not in data:
            raise SpecError(f"{where}.{name}", None, f"a positive number of channels up to {MAX_CHANNELS} (required)")
    block = cls(**data)
    check_block_fields(block, where)
    return block, repeats


def _block_to_dict(block: Block) -> dict:
    out: dict[str, Any] = {"block": block.kind}
    for f in fields(block):
        value = getattr(block, f.name)
        if f.name in block.channel_fields or value != f.default:
            out[f.name] = _plain(value)
    return out


def _plain(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def from_dict(data: Any, source: str = "spec") -> Spec:
    """Validate a plain dict (from YAML) into a Spec; raise SpecError naming the first bad field.

    Checks every field's type and range. Whether the layers chain (channels match, the image does not
    vanish) is checked by :func:`nas.spec.resolve`, i.e. by ``count_cost`` and ``build_model``.
    """
    if not isinstance(data, dict):
        given = "an empty document" if data is None else type(data).__name__
        raise SpecError(source, given, "a mapping with keys " + ", ".join(_SPEC_KEYS))
    for key in data:
        if key not in _SPEC_KEYS:
            raise SpecError(str(key), data[key], "a spec key: " + ", ".join(_SPEC_KEYS) + did_you_mean(key, _SPEC_KEYS))
    if not isinstance(data.get("stages"), list) or not data["stages"]:
        raise SpecError("stages", data.get("stages"), "a non-empty list of stages")
    stem_data = [] if data.get("stem") is None else data["stem"]
    if not isinstance(stem_data, list):
        raise SpecError("stem", stem_data, "a list of blocks")
    stem = tuple(_block_from_dict(b, f"stem[{i}]", False)[0] for i, b in enumerate(stem_data))
    stages = tuple(Stage(*_block_from_dict(item, f"stages[{i}]", True)) for i, item in enumerate(data["stages"]))
    spec = Spec(stem=stem, stages=stages, head=_head_from_dict(data.get("head")),
                **{"name": "unnamed", **{k: data[k] for k in _SPEC_SCALARS if k in data}})
    check_spec_fields(spec)
    return spec


def _head_from_dict(head_data: Any) -> Head:
    head_keys = [f.name for f in fields(Head)]
    head_data = {} if head_data is None else head_data
    if not isinstance(head_data, dict):
        raise SpecError("head", head_data, "a mapping with keys " + ", ".join(head_keys))
    for key in head_data:
        if key not in head_keys:
            raise SpecError(f"head.{key}", head_data[key],
                            "one of " + ", ".join(head_keys) + did_you_mean(key, head_keys))
    return Head(**head_data)


def to_dict(spec: Spec) -> dict:
    out: dict[str, Any] = {"name": spec.name}
    for key in _SPEC_SCALARS[1:]:
        value = getattr(spec, key)
        if value != _SPEC_DEFAULTS[key]:
            out[key] = _plain(value)
    out["stem"] = [_block_to_dict(b) for b in spec.stem]
    out["stages"] = [{**{"block": s.block.kind, "repeats": s.repeats}, **_block_to_dict(s.block)} for s in spec.stages]
    out["head"] = {f.name: _plain(getattr(spec.head, f.name)) for f in fields(Head)}
    return out


class _FlowStages(yaml.SafeDumper):
    """Writes each block as a one-line mapping, so a spec reads as a table of stages."""


def _represent_dict(dumper, data):
    flow = all(not isinstance(v, (dict, list)) for v in data.values()) and "block" in data
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


_FlowStages.add_representer(dict, _represent_dict)


def dumps(spec: Spec) -> str:
    return yaml.dump(to_dict(spec), Dumper=_FlowStages, sort_keys=False, width=200)


def loads(text: str, source: str = "spec") -> Spec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(source, f"malformed YAML{where}: {problem}",
                        "a YAML mapping (see README: spec format)") from None
    return from_dict(data, source)


def save(spec: Spec, path: str | os.PathLike) -> None:
    io.write_text(path, dumps(spec))


def load(path: str | os.PathLike) -> Spec:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError("spec", str(path), "an existing YAML file or a zoo name") from None
    except UnicodeDecodeError:
        raise SpecError("spec", str(path),
                        "a YAML text file in UTF-8 (this one is binary or another encoding)") from None
    except OSError as exc:  # a directory, no permission, ...
        raise SpecError("spec", str(path), f"a readable YAML file ({exc.strerror or type(exc).__name__})") from None
    return loads(text, source=str(path))


def spec_hash(spec: Spec) -> str:
    """A short, stable digest of what the architecture *is* (the name and notes don't count)."""
    data = to_dict(replace(spec, name="", notes=""))
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
