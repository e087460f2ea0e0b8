"""The Optuna backend: a study in a journal file that survives kill -9 and that several local processes
can share. It only adapts: decisions become suggest_categorical, intermediate accuracies go to the
pruner (as the reward at that epoch), and the trial's attributes hold what run_candidate measured."""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from ..errors import Rejected
from .candidate import Context, run_candidate
from .config import SearchConfig
from .outputs import RECORD_KEYS

STUDY_NAME = "nas"
STORAGE_FILE = "study.journal"
WORKER = f"{socket.gethostname()}:{os.getpid()}"

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _storage(run_dir: Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(run_dir / STORAGE_FILE)))


def multi_objective(config: SearchConfig) -> bool:
    return config.sampler == "nsga2"


def make_sampler(config: SearchConfig, finished: int, grid: dict | None = None) -> optuna.samplers.BaseSampler:
    # A resumed study reseeds with the number of finished trials, so it doesn't replay the same proposals.
    seed = config.seed + 1000 * finished
    if grid is not None:  # every grid point once; a resumed grid skips the points already run
        return optuna.samplers.GridSampler(grid, seed=config.seed)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(20, config.trials // 3)))
    # multivariate + group: TPE models decisions jointly and copes with conditional ones (expansion only
    # for mbconv); constant_liar keeps parallel workers from proposing the same candidate.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=max(4, min(10, config.trials // 3)),
                                          constant_liar=config.workers > 1)


class KeepFractionPruner(optuna.pruners.BasePruner):
    """Successive halving, asynchronous (as ASHA): each reported epoch is a rung; a trial whose value there is
    below the (1 - keep) quantile of the values every trial reaching that rung reported (finished, stopped or
    running) stops, so about ``keep`` of those that reach a rung go on.

    Written here because Optuna's own pruners can't say it: PercentilePruner compares with finished trials
    only (the survivors of earlier rungs, so it cuts more than it says), and SuccessiveHalvingPruner's
    reduction factor is a whole number (it keeps at most half)."""

    def __init__(self, keep: float, n_startup_trials: int = 5):
        self.keep, self.n_startup_trials = keep, n_startup_trials

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        value = trial.intermediate_values[step]
        reached = [t.intermediate_values[step] for t in
                   study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
                   if t.number != trial.number and step in t.intermediate_values]
        if len(reached) < self.n_startup_trials:  # too few to compare with yet
            return False
        return value < float(np.nanpercentile([*reached, value], (1 - self.keep) * 100))


def make_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    """What stops a candidate early, comparing the reward at an epoch (see nas.search.candidate); every
    epoch but the last is a rung (_OptunaIO does not report the last).

    keep75 (default): about 75 % of the candidates reaching a rung go on (KeepFractionPruner), once 5 others
    have reached it. A gentle cut: stopping half or more on noisy one- or two-epoch values leaves the sampler
    too few finished trials to learn from. median: Optuna's MedianPruner, from the 5th trial and the second
    epoch."""
    if config.pruner == "none" or multi_objective(config):
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    return KeepFractionPruner(keep=0.75, n_startup_trials=5)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(run_dir: Path, config: SearchConfig) -> int:
    """Backend interface: see :func:`recover_interrupted_trials`."""
    if not (run_dir / STORAGE_FILE).exists():
        return 0
    return recover_interrupted_trials(open_study(run_dir, config))


def recover_interrupted_trials(study: optuna.Study) -> int:
    """Trials left RUNNING by a killed process on this host are marked failed ('interrupted', not counted)
    and their decisions are queued again, so a kill loses no finished trial and skips no candidate."""
    storage, host = study._storage, socket.gethostname()
    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", ""))
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue  # another machine's worker, or one still running here
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        on_grid = "grid_id" in trial.system_attrs
        if on_grid:  # GridSampler counts a finished trial's point as done: give the point back instead
            storage.set_trial_system_attr(trial._trial_id, "grid_id", -1)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        if trial.params and not on_grid:  # an enqueued trial has no grid_id, which GridSampler cannot take
            study.enqueue_trial(trial.params, skip_if_exists=False)
        recovered += 1
    return recovered


def open_study(run_dir: Path, config: SearchConfig) -> optuna.Study:
    storage = _storage(run_dir)
    directions = ["maximize", "minimize"] if multi_objective(config) else ["maximize"]
    return optuna.create_study(study_name=STUDY_NAME, storage=storage, directions=directions, load_if_exists=True)


def finished_count(study: optuna.Study) -> int:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    return sum(not t.user_attrs.get("interrupted") for t in done)


class _OptunaIO:
    def __init__(self, trial: optuna.Trial, prune: bool, epochs: int):
        self.trial, self.prune, self.epochs = trial, prune, epochs

    def choose(self, name, options):
        return self.trial.suggest_categorical(name, options)

    def report(self, epoch: int, accuracy: float, reward: float) -> None:
        if not self.prune or epoch + 1 >= self.epochs:
            return  # the last epoch is no rung: stopping a candidate that has finished training saves nothing
        self.trial.report(reward, epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_epoch", epoch + 1)
            raise optuna.TrialPruned(f"reward {reward:.4f} (accuracy {accuracy:.3f}) after epoch {epoch + 1} "
                                     "is below the pruner's cut")

    def record(self, **attrs) -> None:
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)


def search(ctx: Context, run_dir: Path, on_trial: Callable[[dict], None]) -> None:
    """Run trials until ``ctx.config.trials`` have finished in total (after :func:`recover_interrupted`);
    ``on_trial`` gets each finished record."""
    config = ctx.config
    study = open_study(run_dir, config)
    remaining = config.trials - finished_count(study)
    if remaining <= 0:
        return
    study.sampler = make_sampler(config, finished_count(study), ctx.grid)
    study.pruner = make_pruner(config)
    multi = multi_objective(config)

    def objective(trial: optuna.Trial):
        trial.set_user_attr("worker", WORKER)
        io = _OptunaIO(trial, prune=not multi and config.pruner != "none", epochs=config.train.epochs)
        try:
            outcome = run_candidate(ctx, io)
        except Rejected as exc:
            trial.set_user_attr("note", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        except optuna.TrialPruned as exc:
            trial.set_user_attr("note", str(exc))
            raise
        except Exception as exc:  # recorded as failed; the search goes on (study.optimize catches it)
            trial.set_user_attr("note", f"{type(exc).__name__}: {exc}"[:300])
            raise
        return (outcome.score, outcome.cost) if multi else outcome.reward

    def callback(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        on_trial(to_record(frozen))

    study.optimize(objective, n_trials=remaining, n_jobs=config.workers, catch=(Exception,),
                   callbacks=[callback], gc_after_trial=False)


_STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
           TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def to_record(trial: optuna.trial.FrozenTrial) -> dict:
    attrs = trial.user_attrs
    state = "interrupted" if attrs.get("interrupted") else _STATES.get(trial.state, str(trial.state))
    return {"number": trial.number, "state": state, "decisions": dict(trial.params),
            **{k: attrs.get(k) for k in RECORD_KEYS}}


def records(run_dir: Path, config: SearchConfig) -> list[dict]:
    if not (run_dir / STORAGE_FILE).exists():
        return []
    study = open_study(run_dir, config)
    return [to_record(t) for t in study.get_trials(deepcopy=False)]
