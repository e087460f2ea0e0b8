"""The settings of a search: defaults < experiments/NAME.yaml < key=value on the command line.

Every key is declared once below with its default, its parser and a line of help; an unknown key or a
bad value becomes one UserError line that names the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import UserError
from ..units import parse_count, parse_milliseconds

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent.parent / "experiments"
OBJECTIVES = ("flops", "params", "mac", "latency", "energy")
SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("quartile", "median", "none")
BACKENDS = ("optuna", "ray")
REWARDS = ("soft", "piecewise", "hard", "accuracy")


@dataclass(frozen=True)
class SearchConfig:
    space: str = "mnas"
    objective: str = "flops"
    target_flops: float = 400e6
    target: float | None = None          # the objective's target when it is not flops (20ms, 3M, 0.05J)
    w: float = -0.7
    reward: str = "soft"
    w_below: float = 0.0
    w_above: float = -1.0
    max_cost: float | None = None        # hard limit on the objective, checked before training
    trials: int = 48
    epochs: int = 4
    batch_size: int = 32
    lr: float = 0.003
    optimizer: str = "adamw"
    schedule: str = "cosine"
    seed: int = 0
    sampler: str = "tpe"
    pruner: str = "quartile"
    dataset: str = "digits"
    data_dir: str | None = None
    resolution: int | None = None        # proxy-training resolution; default: the data set's own
    evaluator: str = "train"
    top_k: int = 5                       # hybrid: train a candidate when its proxy score is in the top k so far
    device: str = "auto"
    latency_device: str = "cpu"
    latency: str = "predicted"           # objective=latency: the latency table's prediction, or a measurement
    threads: int = 1                     # torch threads when latency is timed on CPU (stated with every figure)
    workers: int = 1
    backend: str = "optuna"
    out: str | None = None
    ray_address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrent: int = 1

    def cost_target(self) -> float:
        """T in the reward: target_flops for objective=flops, else target (in the objective's unit)."""
        if self.objective == "flops":
            return self.target if self.target is not None else self.target_flops
        if self.target is None:
            raise UserError(f"target: objective={self.objective} needs target= (e.g. "
                            f"{ {'latency': '20ms', 'energy': '0.05', 'params': '3M', 'mac': '20M'}[self.objective]})")
        return self.target

    def to_dict(self) -> dict:
        return asdict(self)


def _int(low: int | None = None) -> Callable[[str, Any], int]:
    def parse(key, value):
        try:
            number = int(str(value)) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or (low is not None and number < low):
            raise UserError(f"{key}: got {value!r}; allowed: an integer >= {low}")
        return number
    return parse


def _float(low: float | None = None, high: float | None = None, strict_high: bool = False):
    def parse(key, value):
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        ok = number is not None and number == number
        ok = ok and (low is None or number >= low) and (high is None or (number < high if strict_high else number <= high))
        if not ok:
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            raise UserError(f"{key}: got {value!r}; allowed: a number in [{lo}, {hi}{')' if strict_high else ']'}")
        return number
    return parse


def _choice(options: tuple[str, ...]):
    def parse(key, value):
        if str(value) not in options:
            raise UserError(f"{key}: got {value!r}; allowed: " + ", ".join(options))
        return str(value)
    return parse


def _count(key, value):
    return parse_count(value, key)


def _text(key, value):
    return str(value)


def _optional(parse):
    def wrapped(key, value):
        return None if value in (None, "", "none", "None") else parse(key, value)
    return wrapped


def _target(key, value):
    """A number with a unit: 20ms (latency), 3M (params), 0.05 (J). Unit checks happen in validate()."""
    text = str(value).strip()
    if text.endswith("s") and not text.endswith("J"):
        return parse_milliseconds(text, key)
    return parse_count(text.rstrip("J"), key)


def _evaluator(key, value):
    from ..evaluate.zero_cost import PROXIES

    text = str(value)
    if text in ("train", "hybrid") or (text.startswith("zero_cost:") and text.split(":", 1)[1] in PROXIES):
        return text
    raise UserError(f"{key}: got {value!r}; allowed: train, hybrid, " + ", ".join(f"zero_cost:{p}" for p in PROXIES))


PARSERS: dict[str, tuple[Callable, str]] = {
    "space": (_text, "search space: a name in search_spaces/ or a path"),
    "objective": (_choice(OBJECTIVES), "the cost in the reward"),
    "target_flops": (_count, "T for objective=flops, FLOPs (multiply-adds): 400M, 1.2G, 4e8"),
    "target": (_optional(_target), "T for other objectives: 20ms, 3M, 0.05"),
    "w": (_float(-10, 10), "the reward's exponent: ACC * (cost/T)^w"),
    "reward": (_choice(REWARDS), "soft: ACC*(cost/T)^w; piecewise: w_below/w_above; hard: ACC under max_cost; accuracy: ACC"),
    "w_below": (_float(-10, 10), "piecewise exponent when cost <= T"),
    "w_above": (_float(-10, 10), "piecewise exponent when cost > T"),
    "max_cost": (_optional(_target), "hard limit on the cost, checked before training"),
    "trials": (_int(1), "trials to finish in total (a resumed run counts those already done)"),
    "epochs": (_int(1), "proxy-training epochs per candidate"),
    "batch_size": (_int(2), "proxy-training batch size"),
    "lr": (_float(0, 10), "proxy-training learning rate"),
    "optimizer": (_choice(("adamw", "sgd")), "proxy-training optimizer"),
    "schedule": (_choice(("cosine", "cyclic")), "learning-rate schedule (cyclic: ESPNetv2's)"),
    "seed": (_int(0), "seed of the sampler, the data split and the proxy training"),
    "sampler": (_choice(SAMPLERS), "tpe, random, or nsga2 (accuracy vs cost Pareto front)"),
    "pruner": (_choice(PRUNERS), "stop clearly bad candidates: quartile (bottom 25 %), median, none"),
    "dataset": (_text, "digits (built in), cifar10, cifar100, imagefolder:PATH"),
    "data_dir": (_optional(_text), "where cifar10/cifar100 live"),
    "resolution": (_optional(_int(8)), "proxy-training resolution (default: the data set's own)"),
    "evaluator": (_evaluator, "train, zero_cost:NAME, or hybrid"),
    "top_k": (_int(1), "hybrid: how many of the best proxy scores so far get trained"),
    "device": (_choice(("auto", "cpu", "cuda")), "where proxy training runs"),
    "latency_device": (_choice(("cpu", "cuda")), "where objective=latency/energy is measured"),
    "latency": (_choice(("predicted", "measured")), "objective=latency: predicted (the latency table) or measured"),
    "threads": (_int(1), "torch threads when latency is timed on CPU"),
    "workers": (_int(1), "trials run at once in this process (threads)"),
    "backend": (_choice(BACKENDS), "optuna (one machine) or ray (a Ray cluster)"),
    "out": (_optional(_text), "run directory (default runs/<space>-<timestamp>); an existing one resumes"),
    "ray_address": (_optional(_text), "Ray cluster: auto, ray://host:port; default RAY_ADDRESS or a local instance"),
    "cpus_per_trial": (_float(0.01, 1024), "Ray: CPUs per trial"),
    "gpus_per_trial": (_float(0, 64), "Ray: GPUs per trial (fractions share a GPU)"),
    "concurrent": (_int(1), "Ray: trials run at once"),
}
assert set(PARSERS) == {f.name for f in fields(SearchConfig)}


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """['space=mnas', 'trials=10'] -> {'space': 'mnas', 'trials': '10'} (values parsed later)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"argument {pair!r}: expected key=value (e.g. space=mnas target_flops=400M)")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _check_key(key: str, where: str) -> None:
    if key not in PARSERS:
        close = difflib.get_close_matches(key, list(PARSERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; keys: {', '.join(PARSERS)}"
        raise UserError(f"{where}unknown key {key!r}{hint}")


def apply(config: SearchConfig, values: dict[str, Any], where: str = "") -> SearchConfig:
    changes = {}
    for key, value in values.items():
        _check_key(key, where)
        changes[key] = PARSERS[key][0](key, value)
    return validate(replace(config, **changes))


def validate(config: SearchConfig) -> SearchConfig:
    if config.objective != "flops":
        config.cost_target()  # raises a one-line error when target= is missing
    if config.sampler == "nsga2" and config.backend == "ray":
        pass  # OptunaSearch supports NSGA-II too
    if config.evaluator.startswith("zero_cost") and config.pruner != "none":
        config = replace(config, pruner="none")  # no intermediate values to prune on
    return config


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def load_experiment(name: str) -> dict[str, Any]:
    path = Path(name) if Path(name).suffix else EXPERIMENTS_DIR / f"{name}.yaml"
    if not path.exists():
        names = experiment_names()
        close = difflib.get_close_matches(name, names, n=1)
        raise UserError(f"experiment: got {name!r}; allowed: " + ", ".join(names)
                        + (f" (did you mean {close[0]!r}?)" if close else ""))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"experiment {path}: malformed YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"experiment {path}: got {type(data).__name__}; allowed: a mapping of key: value")
    return data


def resolve_config(pairs: list[str], stored: dict | None = None) -> tuple[SearchConfig, dict]:
    """Defaults < stored run config (when resuming) < experiment < key=value. Returns the config and the
    explicit key=value dict (so a resume can re-apply what the user typed)."""
    given = parse_pairs(pairs)
    config = SearchConfig()
    if stored:
        config = apply(config, {k: v for k, v in stored.items() if k in PARSERS and v is not None}, "stored config: ")
    experiment = given.pop("experiment", None)
    if experiment:
        config = apply(config, load_experiment(experiment), f"experiment {experiment}: ")
    return apply(config, given), given
