"""The Ray backend's driver-side choices: which candidate to try next (Optuna's sampler inside Tune's
OptunaSearch) and which to stop early (ASHA).

A search proposes with :class:`NasOptunaSearch`, define-by-run: ``ctx.propose`` asks
``trial.suggest_categorical``, with the same sampler as the Optuna backend. A new session's sampler is
warm-started with every earlier trial of the run (:func:`warm_start`), so a run resumed with more
``trials=`` proposes as the Optuna backend would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import optuna
from ray import cloudpickle
from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from ..io import write_with
from ..space import fixed_choices
from ..spec import spec_hash
from . import optuna_backend
from .config import SearchConfig
from .outputs import best_record
from .ray_records import FINISHED_STATES, finished_count, frozen_trial, replayed_distributions, trial_state
from .ray_worker import BEST_KEY, KNOWN_KEY

STUDY_NAME = "nas"               # the in-memory Optuna study inside OptunaSearch


class _DefineByRun:
    """OptunaSearch's define-by-run space: the space asks its decisions through suggest_categorical."""

    def __init__(self, propose: Callable):
        self.propose = propose

    def __call__(self, trial) -> None:
        self.propose(lambda name, options: trial.suggest_categorical(name, options))


def nested(result: dict | None) -> dict | None:
    """A result as the worker reported it. Tune hands a searcher each result flattened ("nas/state",
    "nas/decisions/stage0.block"); read as if nested, every trial would look stopped and TPE learn from none."""
    if result is None or "nas" in result:
        return result
    out: dict = {}
    for key, value in result.items():
        *parents, last = key.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


class NasOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna what nas measured: a rejected or ASHA-stopped candidate is PRUNED and
    a failed one FAIL (not a COMPLETE trial with a missing value), intermediate values are the per-epoch
    reward (as in the Optuna backend), and an architecture already evaluated is flagged in its trial's
    config so the worker does not train it again. Each trial's config also carries the best reward so far, so
    the worker can skip a candidate that could not beat it (nas.search.candidate.skips_hopeless).

    It translates nas's results into OptunaSearch's terms and leaves the bookkeeping to OptunaSearch.
    """

    def __init__(self, propose: Callable, known: dict, best: float | None = None, **kwargs):
        self.propose, self.known = propose, dict(known)  # spec hash -> accuracy, seconds
        self.best = best  # the best reward of a complete trial so far (earlier sessions' included)
        super().__init__(space=_DefineByRun(propose), **kwargs)

    @property
    def multi_objective(self) -> bool:
        return isinstance(self.metric, list)

    def suggest(self, trial_id):
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            key = spec_hash(self.propose(fixed_choices(config)))
            if key in self.known:
                config[KNOWN_KEY] = self.known[key]
            if self.best is not None:
                config[BEST_KEY] = self.best
        return config

    def on_trial_result(self, trial_id, result):
        result = nested(result)
        running = (result.get("nas") or {}).get("state") == "running"
        if running and not self.multi_objective:  # an epoch's reward, for the pruner
            super().on_trial_result(trial_id, {self.metric: result["reward"],
                                               TRAINING_ITERATION: result["epoch"] - 1})

    def on_trial_complete(self, trial_id, result=None, error=False):
        result = nested(result)
        state = trial_state(result, error)
        if state == "complete":
            value = {"accuracy": result["accuracy"], "cost": result["cost"], "reward": result["reward"]}
            attrs = result["nas"]
            if result["reward"] is not None:
                self.best = result["reward"] if self.best is None else max(self.best, result["reward"])
            if not attrs.get("cached"):
                self.known.setdefault(attrs["spec_hash"], {"accuracy": attrs["accuracy"],
                                                           "seconds": attrs.get("seconds") or 0})
        else:
            value = None  # OptunaSearch tells Optuna FAIL with error, PRUNED without
        try:
            super().on_trial_complete(trial_id, value, error=state == "failed")
        except KeyError:
            pass  # a trial this searcher never proposed: a restored searcher saved before it started

    def save(self, checkpoint_path: str) -> None:
        # OptunaSearch saves with plain pickle, which can't take a closure as propose. Atomic: a kill mid-save
        # leaves the previous checkpoint, not half of one.
        state = self.__dict__.copy()
        write_with(checkpoint_path, lambda fh: cloudpickle.dump(state, fh), binary=True)


def make_searcher(config: SearchConfig, propose: Callable, previous: list[dict], known: dict) -> NasOptunaSearch:
    multi = optuna_backend.multi_objective(config)
    # The Optuna backend's sampler; constant_liar when trials run at once (here: concurrent, not workers).
    sampler = optuna_backend.make_sampler(replace(config, workers=config.concurrent), finished_count(previous))
    metric, mode = (["accuracy", "cost"], ["max", "min"]) if multi else ("reward", "max")
    best = best_record(previous)
    return NasOptunaSearch(propose, known, best["reward"] if best else None, metric=metric, mode=mode, sampler=sampler,
                           storage=warm_start(previous, propose, multi), study_name=STUDY_NAME)


def warm_start(previous: list[dict], propose: Callable, multi: bool) -> optuna.storages.InMemoryStorage:
    """An in-memory Optuna study holding every earlier trial, so a new session's sampler continues
    from them (a resumed run proposes as the Optuna backend would)."""
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME,
                                directions=["maximize", "minimize"] if multi else ["maximize"])
    for r in previous:
        if r["state"] not in FINISHED_STATES or not r.get("decisions"):
            continue
        asked = replayed_distributions(propose, r["decisions"])
        if asked is None:  # the space changed since: this trial can't teach the sampler
            continue
        study.add_trial(frozen_trial(r, asked, multi, r.get("trial_id") or ""))
    return storage


#: ASHA's reduction factor per pruner: a rung keeps 1 / factor of the trials reaching it (keep75: 75 %).
REDUCTION_FACTOR = {"keep75": 4 / 3, "median": 2.0}


def make_scheduler(config: SearchConfig) -> ASHAScheduler | None:
    """ASHA, with the meaning of the Optuna pruner of the same name: rungs at the epochs before the last
    (milestones 1, 4/3, (4/3)^2, ...: each epoch reaches one), the reward at that epoch compared; a trial
    below the cut of those that reached the rung stops (keep75: the bottom quarter; median: the bottom half)."""
    if config.pruner == "none" or optuna_backend.multi_objective(config) or config.train.epochs < 2:
        return None  # with 1 epoch no rung lies before the end
    return ASHAScheduler(time_attr="epoch", metric="reward", mode="max", max_t=config.train.epochs, grace_period=1,
                         reduction_factor=REDUCTION_FACTOR[config.pruner])
