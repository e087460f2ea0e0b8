"""Every setting a user can type, declared once: `nas search`'s keys, the proxy training nested in them, and
`nas scale`'s grid keys.

Each key is a dataclass field made by :func:`setting`: its default, the parser that checks a typed value
(and says what it allows), and one line of meaning. From these fields come the defaults, validation,
`nas search --help`, `nas scale --help` and the README's key table (:func:`key_table`). To add a key,
add a field with ``setting(...)`` to :class:`SearchConfig` (or to :class:`TrainSettings`, if it is how
a candidate is trained) and regenerate the README table; nothing else lists keys.

Torch-free on purpose (a test checks it): the search settings, the evaluators and the CLI's help all
import this module, and choice lists that belong to torch code (zero-cost proxy names) live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields, is_dataclass, replace
from typing import Any

from ..errors import UserError, did_you_mean
from ..reward import REWARD_KINDS
from .values import ZERO_COST_PROXIES as ZERO_COST_PROXIES
from .values import Choice, Count, Evaluator, Flag, Integer, Number, OrNone, Target, Text

OBJECTIVES = ("flops", "params", "mac", "latency", "energy")
SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("keep75", "median", "none")
BACKENDS = ("optuna", "ray")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "cyclic")
DEVICES = ("auto", "cpu", "cuda")
#: The data set `nas search`, `nas scale` and `nas train` use unless told otherwise (the task the spaces' proxies
#: were measured against), and what dataset= may name (nas.data.catalog checks the name when it loads).
DEFAULT_DATASET = "fashion-mnist"
DATASETS = Text("fashion-mnist, digits (both built in, offline), fashion-mnist-full, cifar10, cifar100, "
                "imagefolder:PATH")


def setting(default, parse, meaning: str, shown: str | None = None) -> Any:
    """A dataclass field that is a key: ``parse(key, value)`` checks a typed value; ``meaning`` is one line;
    ``shown`` is how --help and the README show a default that is not a plain value (e.g. "data set's")."""
    return field(default=default, metadata={"parse": parse, "meaning": meaning, "shown": shown})


# --------------------------------------------------------------------------------------------
# The settings
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainSettings:
    """How a candidate is trained by the proxy (nas.evaluate.train); nested in the search settings as ``train``."""

    epochs: int = setting(4, Integer(1), "proxy-training epochs per candidate",
                          shown="4; a space's proxy_training may set its own (mnas: 3)")
    batch_size: int = setting(32, Integer(2), "proxy-training batch size (the last partial batch is dropped)")
    optimizer: str = setting("adamw", Choice(OPTIMIZERS), "proxy-training optimizer (sgd: Nesterov momentum)")
    lr: float = setting(0.003, Number(0, 10), "proxy-training learning rate (the peak of the schedule)",
                        shown="0.003; a space's proxy_training may set its own")
    momentum: float = setting(0.9, Number(0, 1), "momentum of optimizer=sgd")
    weight_decay: float = setting(0.01, Number(0, 1), "weight decay (not on biases, norms and PReLU slopes)")
    label_smoothing: float = setting(0.0, Number(0, 1, below_high=True), "label smoothing of the loss")
    schedule: str = setting("cosine", Choice(SCHEDULES),
                            "learning-rate schedule: cosine with warm-up, or cyclic (ESPNetv2's)")
    cycle_epochs: float = setting(1.0, Number(0, 1000, above_low=True), "schedule=cyclic: epochs per cycle")
    lr_min_ratio: float = setting(0.2, Number(0, 1),
                                  "schedule=cyclic: the rate falls to lr * lr_min_ratio within each cycle")
    device: str = setting("auto", Choice(DEVICES), "where proxy training runs (auto: cuda when there is one; "
                                                   "data on the device, channels_last, bf16 autocast)")
    rewrite_convs: bool = setting(True, Flag(), "CPU: crop dead kernel taps, 1x1 convs as matrix products (exact)")
    # Not keys: the search's `seed` sets the seed, and the execution settings the threads (train_settings()).
    seed: int = 0
    # torch CPU threads. Small-image training is bound by per-op dispatch, not arithmetic: a second thread
    # gains little and, on a busy machine, makes every op wait for both (measured 10-20x slower). Run
    # parallel trials (workers=, backend=ray) instead. 0 keeps torch's default.
    threads: int = 1


@dataclass(frozen=True)
class SearchConfig:
    """The settings of a search: defaults < experiments/NAME.yaml < key=value (nas.search.config)."""

    space: str = setting("mnas", Text("a name in search_spaces/ (mnas, osa, essp, lcnet) or a path to a space YAML"),
                         "the search space")
    objective: str = setting("flops", Choice(OBJECTIVES), "the cost term of the reward (not flops: give target=)")
    target_flops: float = setting(400e6, Count(), "T of the reward for objective=flops, FLOPs (multiply-adds)")
    target: float | None = setting(None, OrNone(Target()), "T of the reward for the other objectives")
    w: float = setting(-0.7, Number(-10, 0), "the reward's exponent: ACC * (cost/T)^w (w > 0 would reward cost)")
    reward: str = setting("soft", Choice(REWARD_KINDS),
                          "soft: ACC * (cost/T)^w; piecewise (MnasNet): w_below when cost <= T, w_above otherwise; "
                          "hard: ACC, candidates over max_cost (or T) rejected untrained; accuracy: ACC")
    w_below: float = setting(0.0, Number(-10, 10), "reward=piecewise: the exponent when cost <= T")
    w_above: float = setting(-1.0, Number(-10, 10), "reward=piecewise: the exponent when cost > T")
    max_cost: float | None = setting(None, OrNone(Target()),
                                     "a hard limit on the cost, checked before training (any reward)")
    trials: int = setting(48, Integer(1), "trials to finish in total; a resumed run counts those already done")
    sampler: str = setting("tpe", Choice(SAMPLERS), "how candidates are chosen (nsga2: accuracy vs cost Pareto front)")
    pruner: str = setting("keep75", Choice(PRUNERS), "at every epoch before the last (a rung), stop candidates whose "
                          "reward so far is in the bottom quarter of those that reached it (median: bottom half)")
    skip_hopeless: bool = setting(True, Flag(), "skip, untrained, a candidate whose reward could not beat the best "
                                  "so far even at accuracy 1 (its cost caps it); it counts as a trial, as a pruned "
                                  "one does (evaluator train or hybrid; one objective)")
    seed: int = setting(0, Integer(0), "seed of the sampler, the data split and the proxy training")
    final_top_k: int = setting(3, Integer(0), "final selection: the best distinct candidates by proxy reward "
                               "trained again, longer, under final_seeds seeds; best.yaml is its winner (0: off)")
    final_epochs: int | None = setting(None, OrNone(Integer(1)), "final selection: training epochs per candidate",
                                       shown="3 x epochs")
    final_seeds: int = setting(2, Integer(1), "final selection: seeds per candidate (seed, seed+1, ...); its "
                               "reward is reward(mean accuracy over them, cost)")
    train: TrainSettings = field(default_factory=TrainSettings)
    dataset: str = setting(DEFAULT_DATASET, DATASETS,
                           "the proxy's data set (fashion-mnist-full / cifar10 / cifar100 read from data_dir; "
                           "digits: 8x8, for smoke runs)",
                           shown="fashion-mnist; a space's proxy_training may set its own (mnas: fashion-mnist)")
    data_dir: str | None = setting(None, OrNone(Text("a folder")),
                                   "where fashion-mnist-full / cifar10 / cifar100 live "
                                   "(default: the cache, then system folders)")
    resolution: int | None = setting(None, OrNone(Integer(8)), "proxy-training side in pixels (FLOPs are always "
                                     "the spec's own)",
                                     shown="data set's, at least the space's proxy_resolution; its proxy_training's "
                                     "(mnas: 14)")
    train_images: int | None = setting(None, OrNone(Integer(2)),
                                       "proxy-training images: the first N of the shuffled training split (the "
                                       "held-out split stays whole)", shown="all; a space's proxy_training may "
                                       "set fewer (mnas: 4000)")
    evaluator: str = setting("train", Evaluator(), "how a candidate is scored (hybrid: synflow screens, the "
                                                   "top_k best so far are trained)")
    top_k: int = setting(5, Integer(1), "evaluator=hybrid: how many of the best proxy scores so far get trained")
    latency_device: str = setting("cpu", Choice(("cpu", "cuda")),
                                  "where objective=latency / energy is measured (cached per spec and device)")
    latency: str = setting("predicted", Choice(("predicted", "measured")),
                           "objective=latency: the per-device latency table's prediction, or a measurement of each "
                           "candidate")
    latency_threads: int = setting(1, Integer(1), "torch threads when latency is timed or predicted on CPU "
                                                  "(stated with every figure)")
    workers: int = setting(1, Integer(1), "trials at once in this process; several processes may share one out=")
    backend: str = setting("optuna", Choice(BACKENDS), "optuna (one machine) or ray (a Ray cluster)")
    out: str | None = setting(None, OrNone(Text("a folder")), "the run directory; an existing one resumes",
                              shown="runs/<space>-<time>")
    ray_address: str | None = setting(None, OrNone(Text("auto, ray://host:port")),
                                      "backend=ray: the cluster", shown="RAY_ADDRESS or a local instance")
    cpus_per_trial: float = setting(1.0, Number(0.01, 1024), "backend=ray: CPUs (and torch threads) per trial")
    gpus_per_trial: float = setting(0.0, Number(0, 64), "backend=ray: GPUs per trial (fractions share a GPU)")
    concurrent: int = setting(1, Integer(1), "backend=ray: trials at once")

    def cost_target(self) -> float:
        """T in the reward: target_flops for objective=flops, else target (in the objective's unit)."""
        if self.objective == "flops":
            return self.target if self.target is not None else self.target_flops
        if self.target is None:
            example = {"latency": "20ms", "energy": "0.05", "params": "3M", "mac": "20M"}[self.objective]
            raise UserError(f"target: objective={self.objective} needs target= (e.g. {example})")
        return self.target

    def train_settings(self) -> TrainSettings:
        """The proxy training as a trial runs it: ``train`` with the search's seed, one torch thread per
        trial on one machine and cpus_per_trial of them on Ray."""
        threads = max(1, int(self.cpus_per_trial)) if self.backend == "ray" else 1
        return replace(self.train, seed=self.seed, threads=threads)

    def to_dict(self) -> dict:
        """Every key with its value, flat, as a user types them (config.yaml, experiment files)."""
        return {key.name: key.value_in(self) for key in KEYS.values()}


@dataclass(frozen=True)
class GridSettings:
    """`nas scale`'s compound-scaling grid. The defaults: 0.05 steps from 1 to 1.3, alpha*beta^2*gamma^2
    within 2 +- 0.1 (53 points, the paper's 1.2, 1.1, 1.15 among them), of which max_candidates are
    evaluated, evenly spread. 16 candidates of 4 proxy epochs on digits took about 3 minutes for an
    EfficientNet-B0 base on a 2-core CPU, and would take about 8 for the largest base of the MnasNet
    space (1.2G FLOPs); all 53 would take 11 and 26."""

    step: float = setting(0.05, Number(0, above_low=True), "grid step of alpha, beta and gamma from 1 to 1.3")
    tolerance: float = setting(0.1, Number(0), "how far alpha*beta^2*gamma^2 may be from 2")
    max_candidates: int = setting(16, Integer(1), "candidates evaluated, evenly spread over the grid")


# --------------------------------------------------------------------------------------------
# Keys: the fields above by the name a user types
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    name: str
    section: str | None     # None: a field of the settings themselves; "train": of their nested TrainSettings
    declared: Field

    @property
    def default(self):
        return self.declared.default

    @property
    def parse(self) -> Callable:
        return self.declared.metadata["parse"]

    @property
    def meaning(self) -> str:
        return self.declared.metadata["meaning"]

    @property
    def shown_default(self) -> str:
        return self.declared.metadata["shown"] or self.parse.show(self.default)

    def value_in(self, settings) -> Any:
        return getattr(getattr(settings, self.section) if self.section else settings, self.name)


def keys_of(cls) -> dict[str, Key]:
    """The keys of a settings dataclass in declaration order, nested settings (``train``) in place."""
    found: dict[str, Key] = {}
    for declared in fields(cls):
        if "parse" in declared.metadata:
            found[declared.name] = Key(declared.name, None, declared)
        elif is_dataclass(declared.default_factory):
            found.update({f.name: Key(f.name, declared.name, f)
                          for f in fields(declared.default_factory) if "parse" in f.metadata})
    return found


KEYS = keys_of(SearchConfig)
GRID_KEYS = keys_of(GridSettings)
TRAIN_KEYS = tuple(name for name, key in KEYS.items() if key.section == "train")
#: The data keys a space's proxy_training may set beside TRAIN_KEYS: the proxy's data set, side and size, measured
#: together with its training (nas.space.Space.proxy_training).
PROXY_DATA_KEYS = ("dataset", "resolution", "train_images")


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """['space=mnas', 'trials=10'] -> {'space': 'mnas', 'trials': '10'} (values parsed later)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"argument {pair!r}: expected key=value (e.g. space=mnas target_flops=400M)")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def known_key(key: str, keys, where: str = "") -> None:
    """One line for an unknown key: the closest known one, or all of them."""
    if key not in keys:
        hint = did_you_mean(key, keys) or f"; keys: {', '.join(keys)}"
        raise UserError(f"{where}unknown key {key!r}{hint}")


def apply(config: SearchConfig, values: dict[str, Any], where: str = "") -> SearchConfig:
    """``config`` with ``values`` (key: typed value) parsed and set; ``where`` prefixes an error line."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        known_key(name, KEYS, where)
        key = KEYS[name]
        parsed = key.parse(name, value)
        if key.section:
            nested.setdefault(key.section, {})[name] = parsed
        else:
            top[name] = parsed
    for section, changes in nested.items():
        top[section] = replace(getattr(config, section), **changes)
    return validate(replace(config, **top))


def validate(config: SearchConfig) -> SearchConfig:
    """Checks across keys, and what one key implies for another."""
    if config.objective != "flops":
        config.cost_target()  # raises a one-line error when target= is missing
    if config.evaluator.startswith("zero_cost") and config.pruner != "none":
        config = replace(config, pruner="none")  # no intermediate values to prune on
    return config


def parse_grid(values: dict[str, Any]) -> dict[str, Any]:
    """`nas scale`'s grid keys parsed; the caller has checked that each is a grid key."""
    return {name: GRID_KEYS[name].parse(name, value) for name, value in values.items()}


# --------------------------------------------------------------------------------------------
# The keys as text: --help and the README table
# --------------------------------------------------------------------------------------------

def help_lines(keys: dict[str, Key]) -> str:
    """Two lines per key for --help: name=default, then its meaning and what it allows."""
    return "\n".join(f"  {name}={key.shown_default}\n      {key.meaning}; allowed: {key.parse.allowed}"
                     for name, key in keys.items())


def key_table(keys: dict[str, Key] = KEYS) -> str:
    """The README's markdown table of the keys (a test checks the README holds exactly this)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("*", "\\*")

    rows = ["| key | default | meaning | allowed |", "|---|---|---|---|"]
    rows += [f"| `{name}` | `{key.shown_default}` | {cell(key.meaning)} | {cell(key.parse.allowed)} |"
             for name, key in keys.items()]
    return "\n".join(rows) + "\n"
