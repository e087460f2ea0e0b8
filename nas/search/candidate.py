"""One trial, whatever the backend: choose an architecture, cost it, evaluate it, reward it.

A backend supplies a TrialIO: how to ask for a decision, how to report intermediate accuracy (where
its pruner may stop the trial) and how to record attributes. Everything else is here, once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import reward as reward_fns
from ..cost import count_cost
from ..errors import Rejected
from ..spec import Spec, dumps, spec_hash
from .config import SearchConfig

# The samples a latency search fits the table's overhead on: fixed, so every worker and every resume of
# the same space on one device fits on the same networks; many, so a space of small networks still
# yields enough large ones (calibrate stops at the table's OVERHEAD_NETWORKS).
CALIBRATION_SEEDS = range(1000, 1040)


class TrialIO(Protocol):
    def choose(self, name: str, options: list) -> Any: ...
    # An epoch's accuracy and the reward it would earn (what the search maximises, and so what the pruner
    # compares: the cost is known before training). May raise the backend's "pruned".
    def report(self, epoch: int, accuracy: float, reward: float) -> None: ...
    def record(self, **attrs) -> None: ...
    # Optional: twin_result(spec_hash) -> {"accuracy", "seconds"} | None waits while another trial (another
    # process sharing the run) evaluates the same architecture, and returns its result (see twin_result below).
    # Optional: best_reward() -> float | None, the best reward a finished trial of this search earned so far
    # (None: none yet, or the backend keeps no single best); a candidate that can't beat it is skipped.


def twin_result(io: TrialIO, key: str) -> dict | None:
    """The result of an identical architecture another trial is evaluating now, after waiting for it; None
    when there is none, it did not complete, or the backend cannot tell (it has no ``twin_result``)."""
    wait = getattr(io, "twin_result", None)
    return wait(key) if wait is not None else None


def best_so_far(io: TrialIO) -> float | None:
    """The best reward of the search so far, where the backend tells it (``best_reward``), else None."""
    ask = getattr(io, "best_reward", None)
    return ask() if ask is not None else None


def multi_objective(config: SearchConfig) -> bool:
    """Two objectives (accuracy up, cost down: nsga2's Pareto front) rather than one reward."""
    return config.sampler == "nsga2"


def skips_hopeless(config: SearchConfig) -> bool:
    """Whether a candidate that could not beat the best reward even at accuracy 1 is skipped untrained: with one
    reward to beat, and where the score is an accuracy (a zero-cost score has no ceiling)."""
    return config.skip_hopeless and not multi_objective(config) and not config.evaluator.startswith("zero_cost")


@dataclass
class Outcome:
    """A completed candidate: the evaluator's score (nas.evaluate.evaluators.Evaluation), its cost, its reward."""

    score: float
    cost: float
    reward: float


@dataclass
class Context:
    """What every trial of one search shares."""

    config: SearchConfig
    propose: Callable[[Callable[[str, list], Any]], Spec]   # choose -> spec (a space's sample, a grid point)
    evaluator: Callable
    grid: dict[str, list] | None = None                      # the full decision grid, for a grid sampler
    measured: dict[tuple[str, str], float] = field(default_factory=dict)   # (spec hash, objective) -> cost
    evaluated: dict[str, dict] = field(default_factory=dict)               # spec hash -> accuracy, seconds
    lock: threading.Lock = field(default_factory=threading.Lock)
    calibrated_on: set[str] = field(default_factory=set)                   # devices whose table it calibrated

    def measured_key(self, key: str) -> tuple[str, str]:
        """Where a measured cost of the spec with hash ``key`` is cached: (hash, "objective:device")."""
        # NVML reads NVIDIA GPUs only: energy is measured on the GPU whatever latency_device says
        # (its default, cpu, would otherwise fail every trial).
        device = "cuda" if self.config.objective == "energy" else self.config.latency_device
        return key, f"{self.config.objective}:{device}"

    def objective_cost(self, spec: Spec, key: str, analytic) -> float:
        """The reward's cost: an analytic count (flops, params, mac), or a measurement (latency in ms,
        energy in J/image) of the spec at its own resolution, cached per spec and device."""
        objective = self.config.objective
        if objective in ("flops", "params", "mac"):
            return float(getattr(analytic, objective))
        cache_key = self.measured_key(key)
        device = cache_key[1].split(":", 1)[1]
        if cache_key not in self.measured:  # measured once per spec and device
            if objective == "latency" and self.config.latency == "predicted":
                value = self.predicted_latency(spec, device)
            elif objective == "latency":
                from ..evaluate.latency import latency_report

                value = latency_report(spec, device, threads=self.config.latency_threads)["latency_ms"]
            else:
                from ..evaluate.energy import energy_report

                value = energy_report(spec, device=device)["energy_j_per_image"]
            with self.lock:
                self.measured[cache_key] = value
        return self.measured[cache_key]

    def predicted_latency(self, spec: Spec, device: str) -> float:
        """The latency table's prediction, with the overhead fitted before the first one (on samples of
        what this search proposes) and then held fixed, so every trial's cost means the same."""
        from ..evaluate.device_lock import measuring_on
        from ..evaluate.latency_table import calibrate, load_table, predict
        from ..space import random_choices

        table = load_table(device, self.config.latency_threads)
        if not table.calibrated and device not in self.calibrated_on:
            # The device's measuring lock, held throughout: another worker thread, process or Ray worker on
            # this host calibrating the same table finishes first, and this one then finds it done.
            with measuring_on(table.device):
                table = load_table(device, self.config.latency_threads)
                if device not in self.calibrated_on:  # once: a space of small networks has too few to fit on
                    samples = (self.propose(random_choices(seed)) for seed in CALIBRATION_SEEDS)
                    calibrate(table, (spec for spec in samples if spec is not None))  # a final stage's: none
                    self.calibrated_on.add(device)
        return predict(table, spec, fit_overhead=False)


def run_candidate(ctx: Context, io: TrialIO) -> Outcome:
    """Raises Rejected (prune: over the hard limit, hopeless, screened out) or any error (the trial failed)."""
    config = ctx.config
    spec = ctx.propose(io.choose)
    key = spec_hash(spec)
    analytic = count_cost(spec)
    io.record(spec_hash=key, params=analytic.params, flops=analytic.flops, mac=analytic.mac, spec_yaml=dumps(spec))
    cost = ctx.objective_cost(spec, key, analytic)
    io.record(cost=cost)
    if config.reward == "hard" or config.max_cost is not None:  # checked before any training
        limit = config.max_cost if config.max_cost is not None else config.cost_target()
        if not reward_fns.within_hard_limit(cost, limit):
            raise Rejected(f"{config.objective} {cost:.4g} is over the hard limit {limit:.4g}")
    def reward_of(score: float) -> float:
        return reward_fns.reward(score, cost, config.cost_target(), config.reward, config.w, config.w_below,
                                 config.w_above)

    # Every reward is ACC times a factor of the cost, which is known now: at accuracy 1 a candidate earns its
    # ceiling. Where that is below the best so far, training it cannot change the search's winner.
    best = best_so_far(io) if skips_hopeless(config) else None
    if best is not None and reward_of(1.0) < best:
        io.record(skipped=True)
        raise Rejected(f"skipped untrained: even at accuracy 1 its reward would be {reward_of(1.0):.4f}, below the "
                       f"best so far {best:.4f}")
    known = ctx.evaluated.get(key) or twin_result(io, key)
    if known is not None:  # an identical architecture is evaluated once
        score, seconds = known["accuracy"], 0.0
        io.record(cached=True)
    else:
        def report(epoch: int, accuracy: float) -> None:
            io.report(epoch, accuracy, reward_of(accuracy))

        evaluation = ctx.evaluator(spec, report)
        score, seconds = evaluation.score, evaluation.seconds
        io.record(curve=[round(a, 6) for a in evaluation.curve])
        if evaluation.proxy_score is not None:
            io.record(proxy_score=evaluation.proxy_score)
    if score is None or not math.isfinite(score):
        raise FloatingPointError(f"the evaluator returned score {score!r}")
    value = reward_of(score)
    io.record(accuracy=score, reward=value, seconds=seconds)  # records call the score "accuracy" (see outputs)
    with ctx.lock:
        ctx.evaluated.setdefault(key, {"accuracy": score, "seconds": seconds})
    return Outcome(score, cost, value)
