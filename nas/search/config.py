"""Where a search's settings come from: defaults (a new run's: nas's with the space's proxy_training; a resumed
run's: nas's) < stored run config (resuming) < experiments/NAME.yaml < key=value on the command line. What the
keys are (defaults, parsers, meanings) is nas.settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError, did_you_mean
from ..settings import KEYS, SearchConfig, apply, parse_pairs, validate
from ..shipped import shipped_folder

EXPERIMENTS_DIR = shipped_folder("experiments")

__all__ = ["EXPERIMENTS_DIR", "SearchConfig", "apply", "experiment_names", "load_experiment", "parse_pairs",
           "resolve_config", "resolve_new_run", "space_defaults", "validate"]


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def load_experiment(name: str) -> dict[str, Any]:
    path = Path(name) if Path(name).suffix else EXPERIMENTS_DIR / f"{name}.yaml"
    if not path.is_file():
        names = experiment_names()
        raise UserError(f"experiment: got {name!r}; allowed: " + ", ".join(names) + did_you_mean(name, names))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"experiment {path}: malformed YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"experiment {path}: got {type(data).__name__}; allowed: a mapping of key: value")
    return data


#: Values an older nas wrote that this one no longer takes, and what a resumed run uses instead. pruner:
#: "quartile" (Optuna's PercentilePruner(25), which stopped 75 %) became keep75; a pruner may change on resume.
RETIRED_VALUES = {("pruner", "quartile"): "keep75"}


def stored_values(stored: dict) -> dict:
    """A run's stored config.yaml as values to apply: keys this nas does not know are skipped (a run written
    by an older or newer nas still resumes), retired values are replaced (RETIRED_VALUES)."""
    return {k: RETIRED_VALUES.get((k, v), v) for k, v in stored.items() if k in KEYS and v is not None}


def space_defaults(space) -> SearchConfig:
    """nas's defaults with the space's own proxy_training on top (nas.space.Space.proxy_training)."""
    return apply(SearchConfig(), space.proxy_training, f"space {space.name}: proxy_training: ")


def resolve_new_run(pairs: list[str], space) -> SearchConfig:
    """A new run's settings: nas's defaults < the space's proxy_training < experiment < key=value.

    The space's proxy_training was measured as a whole on its data set: where it names one and the experiment
    or key=value choose another, none of it applies (a 14 px side and 4,000 images chosen for Fashion-MNIST say
    nothing about CIFAR). Not for a resumed run: it keeps what its config.yaml stored (resolve_config)."""
    config, _ = resolve_config(pairs, None, space_defaults(space))
    measured_on = space.proxy_training.get("dataset")
    if measured_on is not None and config.dataset != measured_on:
        config, _ = resolve_config(pairs)
    return config


def resolve_config(pairs: list[str], stored: dict | None = None,
                   defaults: SearchConfig | None = None) -> tuple[SearchConfig, dict]:
    """Defaults (nas's, or ``defaults``: nas's with the space's proxy_training) < stored run config (when resuming)
    < experiment < key=value. Returns the config and the explicit key=value dict (so a resume can re-apply what
    the user typed).

    A stored config.yaml holds every key flat (SearchConfig.to_dict); keys it holds that nas no longer
    knows are skipped, so a run written by an older nas still resumes. Keys it lacks (added to nas since) and
    keys it stored as null take the defaults: resume with nas's own, never a space's, whose proxy_training may
    have changed since the run was made."""
    given = parse_pairs(pairs)
    config = defaults or SearchConfig()
    if stored:
        config = apply(config, stored_values(stored), "stored config: ")
    experiment = given.pop("experiment", None)
    if experiment:
        config = apply(config, load_experiment(experiment), f"experiment {experiment}: ")
    return apply(config, given), given
