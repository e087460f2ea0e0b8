"""The Optuna backend: a study in a journal file that survives kill -9 and that several local processes
can share. It only adapts: decisions become suggest_categorical, intermediate accuracies go to the
pruner (as the reward at that epoch), and the trial's attributes hold what run_candidate measured."""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

from ..errors import Rejected, UserError
from ..io import create_appendable, process_alive
from . import interrupts
from .candidate import Context, multi_objective, run_candidate
from .config import SearchConfig
from .journal_repair import set_aside_torn_tail
from .outputs import RECORD_KEYS

STUDY_NAME = "nas"
STORAGE_FILE = "study.journal"
CLAIM_FILE = "study.claim"  # locked while a trial is claimed (see claim_lock)
WORKER = f"{socket.gethostname()}:{os.getpid()}"

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class _JournalFile(JournalFileBackend):
    """Optuna's journal file, whose appends a signal does not cut (see nas.search.interrupts)."""

    def append_logs(self, logs: list[dict]) -> None:
        with interrupts.deferred():
            super().append_logs(logs)


def _storage(run_dir: Path) -> optuna.storages.JournalStorage:
    journal = create_appendable(run_dir / STORAGE_FILE)  # 0644 like every nas file, whatever the umask
    return optuna.storages.JournalStorage(_JournalFile(str(journal)))


def make_sampler(config: SearchConfig, finished: int, grid: dict | None = None,
                 sessions: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler, seeded by :func:`sampler_seed`; a grid is walked in the order config.seed gives."""
    seed = sampler_seed(config, finished, sessions)
    if grid is not None:  # every grid point once; a resumed grid skips the points already run
        return _GridSampler(grid, seed=config.seed)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        return _NSGAIISampler(seed=seed, population_size=max(4, min(20, config.trials // 3)))
    # multivariate + group: TPE models decisions jointly and copes with conditional ones (expansion only
    # for mbconv); constant_liar keeps parallel workers (threads or processes sharing the run) from
    # proposing the same candidate.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=max(4, min(10, config.trials // 3)),
                                          constant_liar=True)


class _NSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler, picklable: since Optuna 5 its genetic-algorithm base holds a threading.Lock,
    and Ray Tune pickles the searcher (and so its sampler) when a Tuner is made. The lock is made anew."""

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_thread_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _thread_lock=threading.Lock())


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its study.stop() (which only works inside study.optimize): the trial
    loop here stops by counting claimed trials against the grid's size."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


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


def held(trial: optuna.trial.FrozenTrial) -> bool:
    """Is a RUNNING trial still being evaluated? Yes when its worker is on another machine or is a live process
    here other than this one (whoever asks runs no trial at that moment); no for a dead or unnamed worker."""
    worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
    if not pid.isdigit():
        return False
    if worker_host != socket.gethostname():
        return True
    return int(pid) != os.getpid() and process_alive(int(pid))


def recover_interrupted(run_dir: Path, config: SearchConfig) -> int:
    """Backend interface: see :func:`recover_interrupted_trials`. A torn last journal record is set aside first."""
    path = run_dir / STORAGE_FILE
    if not path.exists():
        return 0
    with claim_lock(run_dir):  # no other process claims (or recovers the same trial) meanwhile
        repair_journal(path)
        return recover_interrupted_trials(open_study(run_dir, config))


def repair_journal(path: Path) -> None:
    """Set a torn last record aside under the lock Optuna's appends take (JournalFileBackend's default), so a
    process that is appending to a shared run right now is waited for, not mistaken for a cut record."""
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        set_aside_torn_tail(path)
    finally:
        lock.release()


def recover_interrupted_trials(study: optuna.Study, requeue: bool = True) -> int:
    """Put back in the queue the trials a killed or interrupted process left RUNNING (marked 'interrupted'),
    and those that failed for a configuration error (listed in the study's 'rerun': a resume with corrected
    settings runs them). Neither counts as finished; their decisions are queued again. ``requeue=False``: the
    interrupted ones are only set aside (for a caller that queues what is missing itself: nas.search.final)."""
    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not held(trial):
            _requeue_running(study, trial, requeue)
            recovered += 1
    rerun = rerun_numbers(study)
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
              if t.user_attrs.get("config_error") and t.number not in rerun and "grid_id" not in t.system_attrs]
    for trial in failed:  # (a finished grid point cannot be given back to GridSampler: not rerun)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    if failed:
        study.set_user_attr("rerun", sorted(rerun | {t.number for t in failed}))
    return recovered + len(failed)


def _requeue_running(study: optuna.Study, trial: optuna.trial.FrozenTrial, requeue: bool = True) -> None:
    storage = study._storage
    storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
    on_grid = "grid_id" in trial.system_attrs
    if on_grid:  # GridSampler counts a finished trial's point as done: give the point back instead
        storage.set_trial_system_attr(trial._trial_id, "grid_id", -1)
    storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    if requeue and trial.params and not on_grid:  # an enqueued trial has no grid_id, which GridSampler cannot take
        study.enqueue_trial(trial.params, skip_if_exists=False)


def rerun_numbers(study: optuna.Study) -> set[int]:
    """Trials that failed for a configuration error and were queued again by a resume."""
    return set(study.user_attrs.get("rerun", []))


def set_aside(trial: optuna.trial.FrozenTrial, rerun: set[int]) -> bool:
    """Interrupted, or failed for a configuration error and queued again: not counted as finished."""
    return bool(trial.user_attrs.get("interrupted")) or trial.number in rerun


def open_study(run_dir: Path, config: SearchConfig) -> optuna.Study:
    storage = _storage(run_dir)
    directions = ["maximize", "minimize"] if multi_objective(config) else ["maximize"]
    return optuna.create_study(study_name=STUDY_NAME, storage=storage, directions=directions, load_if_exists=True)


def finished_count(study: optuna.Study) -> int:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    rerun = rerun_numbers(study)
    return sum(not set_aside(t, rerun) for t in done)


def taken_count(study: optuna.Study) -> int:
    """Trials finished or being evaluated by a live worker: the slots of ``trials`` already used."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return finished_count(study) + sum(t.user_attrs.get("worker") == WORKER or held(t) for t in running)


def sampler_seed(config: SearchConfig, finished: int, sessions: int = 0) -> int:
    """config.seed, plus 1000 per finished trial (a resume doesn't replay the first proposals), plus the number of
    sessions that joined the run before this one (processes sharing a run propose differently)."""
    return config.seed + 1000 * finished + sessions


def join_session(study: optuna.Study, run_dir: Path) -> int:
    """Count this process among the run's sessions; returns how many joined before it."""
    with claim_lock(run_dir):
        sessions = int(study.user_attrs.get("sessions", 0))
        study.set_user_attr("sessions", sessions + 1)
    return sessions


class _OptunaIO:
    """run_candidate's TrialIO on an Optuna study. ``final``: a final-selection training, which every finalist
    and seed gets: no waiting for an identical architecture's result, no skipping for the best so far."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, prune: bool, epochs: int, final: bool = False):
        self.study, self.trial, self.prune, self.epochs, self.final = study, trial, prune, epochs, final

    def choose(self, name, options):
        return self.trial.suggest_categorical(name, options)

    def report(self, epoch: int, accuracy: float, reward: float) -> None:
        interrupts.check()  # a worker thread's safe point to stop at
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

    def best_reward(self) -> float | None:
        """The best reward a complete trial of the run earned (any process's); None before the first one and in
        the final selection."""
        if self.final:
            return None
        try:
            return self.study.best_value
        except ValueError:  # no complete trial yet
            return None

    def twin_result(self, key: str) -> dict | None:
        """Wait while an earlier trial (this process or another) evaluates the same architecture; its accuracy
        and seconds when it completed, else None (then this trial evaluates it)."""
        if self.final:
            return None
        deadline = time.monotonic() + 10.0
        while True:
            live = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE))
            earlier = [t for t in live if t.number < self.trial.number]
            # An earlier trial records its spec hash a moment after it is claimed: wait for those of live
            # workers first, or two trials racing past each other would both train one architecture.
            if time.monotonic() < deadline and any(
                    t.state == TrialState.RUNNING and "spec_hash" not in t.user_attrs
                    and (t.user_attrs.get("worker") == WORKER or held(t)) for t in earlier):
                time.sleep(0.05)
                continue
            twins = [t for t in earlier if t.user_attrs.get("spec_hash") == key]
            for t in twins:
                if t.state == TrialState.COMPLETE and t.user_attrs.get("accuracy") is not None:
                    return {"accuracy": t.user_attrs["accuracy"], "seconds": t.user_attrs.get("seconds") or 0}
            if not any(t.state == TrialState.RUNNING and (t.user_attrs.get("worker") == WORKER or held(t))
                       for t in twins):  # this process's other threads, or a live process
                return None
            interrupts.check()
            time.sleep(0.5)


_THREAD_CLAIM = threading.Lock()


@contextmanager
def claim_lock(run_dir: Path) -> Iterator[None]:
    """Held while a trial is claimed (or the journal's tail checked): one process and thread at a time. An
    flock is released by the kernel when its holder dies, so a killed process never leaves it held."""
    with _THREAD_CLAIM, open(create_appendable(run_dir / CLAIM_FILE), "a") as handle, interrupts.deferred():
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def claim_trial(study: optuna.Study, run_dir: Path, total: int, seed: int) -> optuna.Trial | None:
    """A new trial, unless ``total`` are already finished or running (in any process sharing the run)."""
    with claim_lock(run_dir):
        if taken_count(study) >= total:
            return None
        trial = study.ask()
        trial.set_user_attr("worker", WORKER)
        trial.set_user_attr("sampler_seed", seed)
    return trial


def search(ctx: Context, run_dir: Path, on_trial: Callable[[dict], None]) -> None:
    """Run trials until ``ctx.config.trials`` have finished in total, counting those of earlier sessions and of
    other processes sharing the run (after :func:`recover_interrupted`); ``on_trial`` gets each finished record.
    ``workers`` threads claim trials one at a time; a signal stops them (see nas.search.interrupts)."""
    config = ctx.config
    with claim_lock(run_dir):
        study = open_study(run_dir, config)
    if taken_count(study) >= config.trials:
        return
    finished, sessions = finished_count(study), join_session(study, run_dir)
    seed = sampler_seed(config, finished, sessions)  # recorded with each trial
    study.sampler = make_sampler(config, finished, ctx.grid, sessions)
    study.pruner = make_pruner(config)

    def work() -> None:
        while True:
            interrupts.check()
            trial = claim_trial(study, run_dir, config.trials, seed)
            if trial is None:
                return
            on_trial(to_record(run_trial(study, trial, ctx)))

    if config.workers == 1:
        work()
        return
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_collecting(work, errors), daemon=True) for _ in range(config.workers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:  # an interrupt in the main thread: the workers stop at their next safe point
        with interrupts.deferred():
            for thread in threads:
                thread.join()
    if errors:
        raise errors[0]


def _collecting(work: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: B036 - handed to the main thread, which raises it
            errors.append(exc)
    return run


def run_trial(study: optuna.Study, trial: optuna.Trial, ctx: Context) -> optuna.trial.FrozenTrial:
    """Evaluate a claimed trial and tell the study how it ended. Interrupted passes through untold: the trial
    stays RUNNING, and recover_interrupted queues it again."""
    multi = multi_objective(ctx.config)
    io = _OptunaIO(study, trial, prune=not multi and ctx.config.pruner != "none", epochs=ctx.config.train.epochs)
    try:
        outcome = run_candidate(ctx, io)
    except (Rejected, optuna.TrialPruned) as exc:
        trial.set_user_attr("note", str(exc))
        return _tell(study, trial, state=TrialState.PRUNED)
    except Exception as exc:  # recorded as failed; the search goes on
        trial.set_user_attr("note", f"{type(exc).__name__}: {exc}"[:300])
        if isinstance(exc, UserError):  # a configuration error: a resume with corrected settings reruns it
            trial.set_user_attr("config_error", True)
        return _tell(study, trial, state=TrialState.FAIL)
    return _tell(study, trial, [outcome.score, outcome.cost] if multi else outcome.reward)


def _tell(study: optuna.Study, trial: optuna.Trial, values=None, state=None) -> optuna.trial.FrozenTrial:
    with interrupts.deferred():  # a measured result is stored whole before a signal stops the search
        return study.tell(trial, values, state=state)


_STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
           TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def to_record(trial: optuna.trial.FrozenTrial, rerun: frozenset[int] | set[int] = frozenset()) -> dict:
    """``rerun``: the numbers of the trials a resume queued again (see rerun_numbers)."""
    attrs = trial.user_attrs
    state = ("interrupted" if attrs.get("interrupted") else "rerun" if trial.number in rerun
             else _STATES.get(trial.state, str(trial.state)))
    return {"number": trial.number, "state": state, "decisions": dict(trial.params),
            **{k: attrs.get(k) for k in RECORD_KEYS}}


def records(run_dir: Path, config: SearchConfig) -> list[dict]:
    if not (run_dir / STORAGE_FILE).exists():
        return []
    study = open_study(run_dir, config)
    rerun = rerun_numbers(study)
    return [to_record(t, rerun) for t in study.get_trials(deepcopy=False)]
