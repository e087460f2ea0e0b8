"""Search spaces: a YAML skeleton of stages plus the choices each stage makes, turned into specs.

A space never talks to Optuna or Ray. It asks a ``choose(name, options)`` callback for each decision
and builds a spec from the answers; each backend supplies its own ``choose`` (Optuna's
suggest_categorical, a Ray Tune config lookup, a fixed dict when re-creating a trial).

A space file::

    name: mnas
    description: ...
    spec:            # the fixed part of every spec: resolution, stem, head, ...
      stem: [{block: conv, out_channels: 32, kernel: 3, stride: 2}]
      head: {channels: 1280}
    global:          # decisions made once per architecture (spec-level fields)
      width_multiplier: [0.75, 1.0]
    per_stage:       # decisions every stage makes independently (MnasNet's factorised space)
      block: [mbconv, separable, conv]
      kernel: [3, 5]
      expansion: [1, 3, 6]          # asked only when the chosen block has this field
      repeats_delta: [-1, 0, 1]     # added to the skeleton's repeats (at least 1 remains)
      channel_scale: [0.75, 1.0, 1.25]   # multiplies every channel field, EfficientNet rounding
    fixed_per_stage: {activation: relu}  # fields every stage gets
    proxy_resolution: 29   # optional: a search without resolution= trains at least at this side (default: the
                           # smallest at which no candidate's map vanishes, see smallest_resolution; a space
                           # may ask for more where its choices only act on larger maps, as mnas does)
    proxy_training: {dataset: fashion-mnist, resolution: 14, train_images: 4000, epochs: 3}  # optional, below
    skeleton:        # one entry per stage: its fixed fields, optionally its own `choices`
      - {out_channels: 16, repeats: 1, stride: 1}
      - {out_channels: 24, repeats: 2, stride: 2, choices: {kernel: [3]}}

``proxy_training`` is the space's own proxy, measured as a whole (bench/proxy_fidelity.py): training keys
(epochs, lr, batch_size, ...) and the data keys dataset, resolution and train_images. They sit above nas's
defaults and below experiments and key=value. Where it names a dataset and the search trains on another, none
of it applies (nas's defaults and proxy_resolution do). A resumed run keeps what its config.yaml stored.

A per-stage decision named after a block field (kernel, se_ratio, skip, layers, ese, ...) is asked only
when the stage's block kind has that field, so one space can mix block kinds (a conditional space).
Decision names are ``stage<i>.<key>`` and ``global.<key>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError, UserError, did_you_mean
from .shipped import shipped_folder
from .spec import BLOCK_KINDS, Spec, from_dict, round_channels

Choose = Callable[[str, list], Any]

SPACES_DIR = shipped_folder("search_spaces")
_DERIVED = ("repeats_delta", "channel_scale", "block", "repeats")
_GLOBAL_KEYS = ("width_multiplier", "depth_multiplier", "resolution", "head.channels", "head.dropout", "drop_path")
_SPACE_KEYS = ("name", "description", "spec", "global", "per_stage", "fixed_per_stage", "skeleton", "proxy_resolution",
               "proxy_training")


@dataclass(frozen=True)
class Space:
    name: str
    description: str
    base: dict                              # spec fields shared by every candidate (no stages)
    global_choices: dict[str, list]
    stages: tuple[tuple[dict, dict], ...]   # per stage: (fixed fields, choices)
    source: str = ""
    all_blocks: tuple[str, ...] = field(default=())
    proxy_resolution: int | None = None     # as declared in the file (see needed_resolution)
    # The space's own defaults for proxy-training keys (lr, epochs, ...): above nas's defaults, below a run's
    # stored settings, an experiment and key=value (nas.search.run.prepare_run).
    proxy_training: dict[str, Any] = field(default_factory=dict)

    def decisions(self) -> dict[str, list]:
        """Every decision the space can ask, by name (a superset: conditional ones may be skipped)."""
        out = {f"global.{k}": list(v) for k, v in self.global_choices.items()}
        for i, (_, choices) in enumerate(self.stages):
            out.update({f"stage{i}.{k}": list(v) for k, v in choices.items()})
        return out

    def size(self) -> int:
        n = 1
        for options in self.decisions().values():
            n *= len(options)
        return n


def _err(source: str, where: str, value, allowed: str) -> UserError:
    return UserError(f"{source}: {where}: got {value!r}; allowed: {allowed}")


def _check_choices(source: str, where: str, choices: Any, per_stage: bool) -> dict[str, list]:
    if not isinstance(choices, dict):
        raise _err(source, where, choices, "a mapping of decision name to a list of options")
    block_fields = {f.name for cls in BLOCK_KINDS.values() for f in fields(cls)}
    allowed = (block_fields | set(_DERIVED)) if per_stage else set(_GLOBAL_KEYS)
    for key, options in choices.items():
        if key not in allowed:
            raise _err(source, f"{where}.{key}", options,
                       "one of " + ", ".join(sorted(allowed)) + did_you_mean(key, allowed))
        if not isinstance(options, list) or not options:
            raise _err(source, f"{where}.{key}", options, "a non-empty list of options")
        if key == "block":
            for kind in options:
                if kind not in BLOCK_KINDS:
                    raise _err(source, f"{where}.block", kind, "block kinds " + ", ".join(BLOCK_KINDS))
    return {k: list(v) for k, v in choices.items()}


def load_space(name_or_path: str) -> Space:
    """A space by name (a file in search_spaces/) or by path; UserError for a missing or malformed one."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            names = space_names()
            raise UserError(f"space: got {name_or_path!r}; allowed: " + ", ".join(names) + " or a path to a space YAML"
                            + did_you_mean(name_or_path, names))
    if path.is_dir():
        raise UserError(f"space: got {name_or_path!r}, a folder; allowed: " + ", ".join(space_names())
                        + " or a path to a space YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"space: no such file {str(path)!r}; allowed: " + ", ".join(space_names())) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"space: {path}: malformed YAML{at}: {getattr(exc, 'problem', '') or exc}") from None
    return space_from_dict(data, str(path))


def space_from_dict(data: Any, source: str = "space") -> Space:
    if not isinstance(data, dict):
        raise _err(source, "top level", type(data).__name__, "a mapping with keys " + ", ".join(_SPACE_KEYS))
    for key in data:
        if key not in _SPACE_KEYS:
            raise _err(source, key, data[key], "one of " + ", ".join(_SPACE_KEYS) + did_you_mean(key, _SPACE_KEYS))
    skeleton = data.get("skeleton")
    if not isinstance(skeleton, list) or not skeleton:
        raise _err(source, "skeleton", skeleton, "a non-empty list of stages")
    base = data.get("spec") or {}
    if not isinstance(base, dict) or "stages" in base:
        raise _err(source, "spec", base, "a mapping of fixed spec fields without stages (stages come from skeleton)")
    per_stage = _check_choices(source, "per_stage", data.get("per_stage") or {}, True)
    fixed = data.get("fixed_per_stage") or {}
    if not isinstance(fixed, dict):
        raise _err(source, "fixed_per_stage", fixed, "a mapping of block field to value")
    stages = []
    kinds = set(per_stage.get("block", []))
    for i, entry in enumerate(skeleton):
        if not isinstance(entry, dict):
            raise _err(source, f"skeleton[{i}]", entry, "a mapping of stage fields")
        entry = dict(entry)
        own = _check_choices(source, f"skeleton[{i}].choices", entry.pop("choices", {}) or {}, True)
        stage_fixed = {**fixed, **entry}
        if "block" not in stage_fixed and "block" not in {**per_stage, **own}:
            raise _err(source, f"skeleton[{i}].block", None, "a block kind, fixed or in per_stage choices")
        stages.append((stage_fixed, {**per_stage, **own}))
        kinds |= set(own.get("block", [])) | ({stage_fixed["block"]} if "block" in stage_fixed else set())
    space = Space(str(data.get("name", Path(source).stem)), str(data.get("description", "")), dict(base),
                  _check_choices(source, "global", data.get("global") or {}, False), tuple(stages), source,
                  tuple(sorted(kinds)), _declared_resolution(source, data.get("proxy_resolution")),
                  _proxy_training(source, data.get("proxy_training")))
    _check_samples(space)
    declared = {name: side for name, side in (("proxy_resolution", space.proxy_resolution),
                                              ("proxy_training.resolution", space.proxy_training.get("resolution")))
                if side is not None}
    smallest = smallest_resolution(space) if declared else 0  # resolves specs side by side: once, and only if needed
    for name, side in declared.items():
        if side < smallest:
            raise _err(source, name, side, f"at least {smallest} (below it a candidate's feature map vanishes)")
    return space


def _proxy_training(source: str, value: Any) -> dict[str, Any]:
    """``proxy_training``: a mapping of proxy-training keys (as nas search takes them) to values, each checked."""
    from .settings import KEYS, PROXY_DATA_KEYS, TRAIN_KEYS

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _err(source, "proxy_training", value, "a mapping of proxy-training key to value")
    allowed = TRAIN_KEYS + PROXY_DATA_KEYS
    for name, item in value.items():
        if name not in allowed:
            raise _err(source, f"proxy_training.{name}", item,
                       "a key among " + ", ".join(allowed) + did_you_mean(str(name), allowed))
        try:
            KEYS[name].parse(name, item)
        except UserError as exc:
            raise UserError(f"{source}: proxy_training.{exc}") from None
    return dict(value)


def _declared_resolution(source: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _err(source, "proxy_resolution", value, "a positive image side in pixels")
    return value


def _downsampling_probes(space: Space) -> list[Choose]:
    """Chooses that between them pick the space's most downsampling candidate: the largest stride offered
    (and the first or else the last option of every other decision, as a stride may hide behind a block kind)."""
    def probe(other: int) -> Choose:
        def choose(name: str, options: list):
            return max(options) if name.endswith(".stride") else options[other]
        return choose
    return [probe(0), probe(-1)]


def smallest_resolution(space: Space, largest: int = 1024) -> int:
    """The smallest image side at which the space's most downsampling candidate still resolves (no feature
    map vanishes): what its proxy training needs at least. Torch-free (spec.resolve only)."""
    from .spec import replace, resolve

    need = 1
    for choose in _downsampling_probes(space):
        spec = sample(space, choose)
        side = need
        while side < largest:
            try:
                resolve(replace(spec, resolution=side))
                break
            except SpecError:
                side += 1
        need = max(need, side)
    return need


def needed_resolution(space: Space) -> int:
    """The proxy resolution the space needs: its declared proxy_resolution, else the smallest that works."""
    return space.proxy_resolution if space.proxy_resolution is not None else smallest_resolution(space)


def _check_samples(space: Space) -> None:
    """Build the first and last option of every decision, so a broken space fails at load, not mid-search."""
    for pick in (lambda name, options: options[0], lambda name, options: options[-1]):
        try:
            sample(space, pick)
        except SpecError as exc:
            raise UserError(f"{space.source}: the space yields an invalid spec: {exc}") from None


def sample(space: Space, choose: Choose) -> Spec:
    """One architecture: ask ``choose`` for each decision, in a fixed order, and build the spec."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in space.base.items()}
    for key, options in space.global_choices.items():
        value = choose(f"global.{key}", options)
        if key.startswith("head."):
            data.setdefault("head", {})[key[5:]] = value
        else:
            data[key] = value
    stages = []
    for i, (fixed, choices) in enumerate(space.stages):
        stage = dict(fixed)
        if "block" in choices:
            stage["block"] = choose(f"stage{i}.block", choices["block"])
        cls = BLOCK_KINDS[stage["block"]]
        names = {f.name for f in fields(cls)}
        stage = {k: v for k, v in stage.items() if k in names or k in ("block", "repeats")}
        for key, options in choices.items():
            if key == "block":
                continue
            if key == "repeats":
                stage["repeats"] = choose(f"stage{i}.repeats", options)
            elif key == "repeats_delta":
                stage["repeats"] = max(1, int(stage.get("repeats", 1)) + choose(f"stage{i}.repeats_delta", options))
            elif key == "channel_scale":
                scale = choose(f"stage{i}.channel_scale", options)
                for name in cls.channel_fields:
                    if name in stage:
                        stage[name] = round_channels(stage[name], scale)
            elif key in names:
                stage[key] = choose(f"stage{i}.{key}", options)
        stages.append(stage)
    data["stages"] = stages
    data["name"] = f"{space.name}-candidate"
    return from_dict(data, source=f"space {space.name}")


def space_names() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def fixed_choices(values: dict[str, Any]) -> Choose:
    """A ``choose`` that replays recorded decisions (to rebuild a trial's spec)."""
    def choose(name: str, options: list):
        return values[name]
    return choose


def random_choices(seed: int) -> Choose:
    import random

    rng = random.Random(seed)

    def choose(name: str, options: list):
        return rng.choice(options)
    return choose
