"""The Ray Tune backend: the same trials as the Optuna backend, run as Ray Tune trials on a Ray cluster
(or on a local Ray instance it starts).

What runs where:
- the driver (this process) holds the Tune loop. A search proposes with ``OptunaSearch`` (define-by-run:
  ``ctx.propose`` asks ``trial.suggest_categorical``; the same sampler as the Optuna backend); a grid
  (``ctx.grid``) is one ``tune.grid_search`` over its points. ASHA stops poor candidates from their
  per-epoch accuracy when ``pruner=median``.
- each trial runs ``run_candidate`` in a Ray worker. The worker replays the decisions from its Tune
  config and rebuilds the Context there from a picklable :class:`Job` (settings, ``propose``, and the
  evaluator or None to build the configured one on the worker, which then loads its own data).
- a driver-side Tune callback appends each finished trial's record to ``ray/trials.jsonl`` (one JSON
  line, flushed and fsynced): the run's records, readable without Ray.

Run directory: ``ray/session-N/`` is a Tune experiment (Tuner storage), ``ray/session-N.done`` marks one
that ran to its end. A driver killed mid-session resumes it with ``Tuner.restore``; trials still wanted
after that (``trials=`` raised, or lost ones) run in a new session whose sampler is warm-started with
every earlier trial.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial
import ray
from ray import cloudpickle, tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from ..errors import UserError
from ..evaluate.evaluators import HybridEvaluator, Rejected, TrainEvaluator, ZeroCostEvaluator
from ..space import fixed_choices
from ..spec import spec_hash
from . import optuna_backend
from .candidate import Context, run_candidate
from .config import SearchConfig

RAY_DIR = "ray"
JOURNAL_FILE = "trials.jsonl"
GRID_KEY = "grid_point"          # a grid trial's Tune config: {GRID_KEY: {decision: value}}
KNOWN_KEY = "nas_known"          # set by the searcher when the architecture was evaluated before
STUDY = "nas"                    # the Optuna study inside OptunaSearch
RECORD_KEYS = ("params", "flops", "mac", "cost", "accuracy", "reward", "seconds", "spec_hash", "spec_yaml", "note",
               "cached", "proxy_score", "curve")
MAX_FAILURES = 1                 # Tune restarts a trial whose worker died once (a node lost); errors in nas are
                                 # caught in the trial and recorded failed, since a retry would fail the same way


# ---------------------------------------------------------------------------------------------------------------
# What a worker needs


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to rebuild the search's Context, all picklable.

    ``propose``: choose -> spec, e.g. ``functools.partial(nas.space.sample, space)`` or a grid's closure.
    ``evaluator``: None builds the configured one (``make_configured_evaluator(config)``) on the worker;
    any other callable ``(spec, report) -> Evaluation`` is shipped by value.
    """

    config: SearchConfig
    propose: Callable
    evaluator: Callable | None = None
    seen_scores: tuple[float, ...] = ()          # hybrid: proxy scores of earlier trials
    evaluated: dict = field(default_factory=dict)  # spec hash -> accuracy, seconds (earlier trials)
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


def job_for(ctx: Context, previous: list[dict]) -> Job:
    # The configured evaluators hold the data set as tensors: rebuilt from the settings on each worker
    # rather than shipped (each node reads its own copy; HybridEvaluator holds a lock and can't be pickled).
    configured = isinstance(ctx.evaluator, (TrainEvaluator, ZeroCostEvaluator, HybridEvaluator))
    scores = tuple(r["proxy_score"] for r in previous if r.get("proxy_score") is not None)
    job = Job(ctx.config, ctx.propose, None if configured else ctx.evaluator, scores, dict(ctx.evaluated))
    for name in ("propose", "evaluator"):
        try:
            cloudpickle.dumps(getattr(job, name))
        except Exception as exc:  # a programming error, said before Ray reports it from deep inside Tune
            raise TypeError(f"backend=ray sends the search's {name} ({getattr(job, name)!r}) to Ray workers, but it "
                            f"can't be pickled: {exc}. Keep locks and loaded data out of its pickled state "
                            "(__getstate__), and load data lazily on the worker.") from exc
    return job


_worker_contexts: dict[str, Context] = {}  # one per worker process, reused by the trials of one job


def _worker_context(job: Job) -> Context:
    if job.key not in _worker_contexts:
        evaluator = job.evaluator
        if evaluator is None:
            from .run import make_configured_evaluator

            config = job.config
            if config.train.device == "auto" and config.gpus_per_trial == 0:
                # a GPU the trial did not reserve is another trial's
                config = replace(config, train=replace(config.train, device="cpu"))
            evaluator = make_configured_evaluator(config, list(job.seen_scores))
        _worker_contexts.clear()
        _worker_contexts[job.key] = Context(job.config, job.propose, evaluator, evaluated=dict(job.evaluated))
    return _worker_contexts[job.key]


class _TuneIO:
    """run_candidate's TrialIO inside a Tune trial: decisions come from the Tune config, each epoch's
    accuracy goes to tune.report (where ASHA may stop the trial), attributes ride along in every report."""

    def __init__(self, values: dict, epochs: int):
        self.values, self.epochs = values, epochs
        self.attrs: dict[str, Any] = {"decisions": {}, "curve": []}

    def choose(self, name: str, options: list):
        value = self.values[name]
        self.attrs["decisions"][name] = value
        return value

    def report(self, epoch: int, accuracy: float) -> None:
        self.attrs["curve"].append(round(accuracy, 6))
        if epoch + 1 >= self.epochs:
            return  # the final report carries the last epoch: ASHA stops a trial that reaches max_t
        tune.report({"epoch": epoch + 1, "accuracy": accuracy, "reward": None, "cost": self.attrs.get("cost"),
                     "nas": self._snapshot("running")})

    def record(self, **attrs) -> None:
        first = "spec_yaml" in attrs and "spec_yaml" not in self.attrs
        self.attrs.update(attrs)
        if first:  # reported before any training: a trial whose worker dies (out of memory) keeps its spec
            tune.report({"accuracy": None, "reward": None, "cost": None, "nas": self._snapshot("started")})

    def _snapshot(self, state: str) -> dict:
        return {**self.attrs, "decisions": dict(self.attrs["decisions"]), "curve": list(self.attrs["curve"]),
                "state": state}

    def finish(self, state: str, note: str | None = None) -> None:
        self.attrs["note"] = note
        result = {"accuracy": self.attrs.get("accuracy"), "reward": self.attrs.get("reward"),
                  "cost": self.attrs.get("cost"), "nas": self._snapshot(state)}
        if state == "complete" and self.attrs["curve"] and not self.attrs.get("cached"):
            result["epoch"] = len(self.attrs["curve"])  # ASHA files the final accuracy in its rungs
        tune.report(result)


def _trial(tune_config: dict, job: Job) -> None:
    """One Tune trial (runs in a worker). Errors in the candidate are recorded, not raised."""
    import torch

    torch.set_num_threads(max(1, int(job.config.cpus_per_trial)))
    ctx = _worker_context(job)
    values = tune_config.get(GRID_KEY, tune_config)
    io = _TuneIO(values, job.config.train.epochs)
    if KNOWN_KEY in tune_config:  # the searcher knows this architecture's accuracy: not trained again
        key = spec_hash(ctx.propose(fixed_choices(values)))
        ctx.evaluated.setdefault(key, tune_config[KNOWN_KEY])
    try:
        run_candidate(ctx, io)
    except Rejected as exc:
        io.finish("pruned", str(exc))
    except Exception as exc:  # recorded as failed; the search goes on
        io.finish("failed", f"{type(exc).__name__}: {exc}"[:300])
    else:
        io.finish("complete", io.attrs.get("note"))


# ---------------------------------------------------------------------------------------------------------------
# The driver: proposing, stopping early, recording


def _state(result: dict | None, error: bool) -> str:
    state = ((result or {}).get("nas") or {}).get("state")
    if error:
        return "failed"
    return state if state in ("complete", "pruned", "failed") else "pruned"  # stopped by ASHA mid-training


class _DefineByRun:
    """OptunaSearch's define-by-run space: the space asks its decisions through suggest_categorical."""

    def __init__(self, propose: Callable):
        self.propose = propose

    def __call__(self, trial) -> None:
        self.propose(lambda name, options: trial.suggest_categorical(name, options))


class NasOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna what nas measured: a rejected or ASHA-stopped candidate is PRUNED and
    a failed one FAIL (not a COMPLETE trial with a missing value), intermediate values are the per-epoch
    accuracy (as in the Optuna backend), and an architecture already evaluated is flagged in its trial's
    config so the worker does not train it again."""

    def __init__(self, propose: Callable, known: dict, **kwargs):
        self._propose, self._known = propose, dict(known)
        super().__init__(space=_DefineByRun(propose), **kwargs)

    @property
    def _multi(self) -> bool:
        return isinstance(self.metric, list)

    def suggest(self, trial_id):
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            key = spec_hash(self._propose(fixed_choices(config)))
            if key in self._known:
                config[KNOWN_KEY] = self._known[key]
        return config

    def on_trial_result(self, trial_id, result):
        if not self._multi and (result.get("nas") or {}).get("state") == "running":
            self._ot_trials[trial_id].report(result["accuracy"], result["epoch"] - 1)

    def on_trial_complete(self, trial_id, result=None, error=False):
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        state = _state(result, error)
        trial = self._ot_trials[trial_id]
        if state == "complete":
            self._ot_study.tell(trial, [result["accuracy"], result["cost"]] if self._multi else result["reward"])
            attrs = result["nas"]
            if not attrs.get("cached"):
                self._known.setdefault(attrs["spec_hash"], {"accuracy": attrs["accuracy"],
                                                            "seconds": attrs.get("seconds") or 0})
        else:
            self._ot_study.tell(trial, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
        self._completed_trials.add(trial_id)

    def save(self, checkpoint_path: str) -> None:
        # OptunaSearch saves with plain pickle, which can't take a closure as propose
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump(self.__dict__.copy(), f)


def make_searcher(config: SearchConfig, propose: Callable, previous: list[dict], known: dict) -> NasOptunaSearch:
    multi = optuna_backend.multi_objective(config)
    # The Optuna backend's sampler; constant_liar when trials run at once (here: concurrent, not workers).
    sampler = optuna_backend.make_sampler(replace(config, workers=config.concurrent), _finished(previous))
    metric, mode = (["accuracy", "cost"], ["max", "min"]) if multi else ("reward", "max")
    return NasOptunaSearch(propose, known, metric=metric, mode=mode, sampler=sampler,
                           storage=_warm_start(previous, propose, multi), study_name=STUDY)


def _warm_start(previous: list[dict], propose: Callable, multi: bool):
    """An in-memory Optuna study holding every earlier trial, so a new session's sampler continues
    from them (a run resumed with more trials= proposes as the Optuna backend would)."""
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=STUDY,
                                directions=["maximize", "minimize"] if multi else ["maximize"])
    for r in previous:
        if r["state"] not in ("complete", "pruned", "failed") or not r.get("decisions"):
            continue
        asked = {}

        def choose(name, options, decisions=r["decisions"]):
            asked[name] = CategoricalDistribution(options)
            return decisions[name]

        try:
            propose(choose)
        except Exception:  # the space changed since: this trial can't teach the sampler
            continue
        params = {name: r["decisions"][name] for name in asked}
        if r["state"] == "complete" and r.get("reward") is not None:
            values = [r["accuracy"], r["cost"]] if multi else [r["reward"]]
            study.add_trial(create_trial(params=params, distributions=asked, values=values))
        else:
            curve = {} if multi else {i: a for i, a in enumerate(r.get("curve") or [])}
            state = TrialState.PRUNED if r["state"] == "pruned" else TrialState.FAIL
            study.add_trial(create_trial(params=params, distributions=asked, state=state,
                                         intermediate_values=curve))
    return storage


def _make_scheduler(config: SearchConfig):
    """ASHA in place of the median pruner: a candidate whose held-out accuracy at a rung (epoch 2, 4, ...;
    the median pruner's warm-up also skips epoch 1) is below the median of the others there stops."""
    if config.pruner == "none" or optuna_backend.multi_objective(config) or config.train.epochs < 3:
        return None  # with 1-2 epochs no rung lies before the end
    return ASHAScheduler(time_attr="epoch", metric="accuracy", mode="max", max_t=config.train.epochs,
                         grace_period=2, reduction_factor=2)


def _error_text(trial) -> str:
    """One line from Tune's error file: the exception of a traceback, or the message of a dead worker."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else str(trial.get_error() or "")
    except Exception:
        text = ""
    last = text.rsplit("Failure #", 1)[-1]  # the file holds every failure, the retries' included
    lines = [line.strip() for line in last.splitlines()[1:] if line.strip()]
    line = (lines[-1] if "Traceback" in last else lines[0]) if lines else "the worker died"
    return f"trial error: {line}"[:300]


def _record(result: dict | None, error: str | None) -> dict:
    """A finished Tune trial's record, from its last result (an ASHA-stopped trial's is an epoch's)."""
    attrs = (result or {}).get("nas") or {}
    state = _state(result, error is not None)
    note = error or attrs.get("note")
    if state == "pruned" and attrs.get("state") == "running":
        note = (f"stopped early by ASHA after epoch {result['epoch']}: held-out accuracy {result['accuracy']:.3f} "
                "is below the median there")
    record = {"state": state, "decisions": attrs.get("decisions") or {}, **{k: attrs.get(k) for k in RECORD_KEYS}}
    record["note"] = note
    if state != "complete":  # as in the Optuna backend: no reward for a trial that did not complete
        record["reward"] = None
    return record


# Listeners by journal path. Tuner.restore brings back the callbacks pickled with the experiment, without
# the progress hook of the process that made them; they find this process's hook here.
_listeners: dict[str, Callable[[dict], None]] = {}


class JournalWriter(tune.Callback):
    """Appends each finished trial's record to the journal (on the driver), once per Tune trial and no more
    than ``total`` in all: after a restore Tune may run again a trial whose end it had not yet saved."""

    def __init__(self, path: Path, total: int):
        self.path, self.total = str(path), total
        self.written: set[str] = set()

    def setup(self, **info):
        self.written = {r["trial_id"] for r in _read_journal(Path(self.path))}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._write(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._write(trial, _error_text(trial))

    def _write(self, trial, error: str | None) -> None:
        if trial.trial_id in self.written or len(self.written) >= self.total:
            return
        record = {"trial_id": trial.trial_id, **_record(trial.last_result, error)}
        if not record["decisions"]:  # it died before its first report
            record["decisions"] = {k: v for k, v in trial.config.get(GRID_KEY, trial.config).items() if k != KNOWN_KEY}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.written.add(trial.trial_id)
        listener = _listeners.get(self.path)
        if listener:
            listener({"number": len(self.written) - 1, **record})


class EnoughTrials(tune.Stopper):
    """Ends the Tune run once the journal holds every trial wanted (pickled with the writer it reads)."""

    def __init__(self, writer: JournalWriter):
        self.writer = writer

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return len(self.writer.written) >= self.writer.total


# ---------------------------------------------------------------------------------------------------------------
# Records


def _read_journal(path: Path) -> list[dict]:
    """The journal's records, once per Tune trial; a half-written last line (a kill mid-write) is skipped."""
    if not path.exists():
        return []
    out, seen = [], set()
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("trial_id") not in seen:
            seen.add(record.get("trial_id"))
            out.append(record)
    return out


def records(run_dir: Path, config: SearchConfig) -> list[dict]:
    """Finished trials in the order they finished; the keys of optuna_backend.to_record (and trial_id)."""
    out = []
    for number, r in enumerate(_read_journal(Path(run_dir) / RAY_DIR / JOURNAL_FILE)):
        out.append({"number": number, "state": r.get("state"), "decisions": r.get("decisions") or {},
                    **{k: r.get(k) for k in RECORD_KEYS}, "trial_id": r.get("trial_id")})
    return out


def _finished(rows: list[dict]) -> int:
    return sum(r["state"] in ("complete", "pruned", "failed") for r in rows)


# ---------------------------------------------------------------------------------------------------------------
# Ray and Tune


@contextmanager
def connected(config: SearchConfig):
    """Ray for the search: the caller's (already initialised), the cluster at ray_address / RAY_ADDRESS,
    or a local instance with room for ``concurrent`` trials, started here and shut down after."""
    if ray.is_initialized():
        _check_resources(config, local=False)
        yield
        return
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        try:  # Ray Client (ray://) takes no driver options
            ray.init(address) if address.startswith("ray://") else ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "ray_address" if config.ray_address else "RAY_ADDRESS"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(f"{where}: got {address!r}, no Ray cluster answered ({first}); allowed: auto, "
                            "HOST:6379 or ray://HOST:10001 of a running cluster, or unset for a local one") from None
    else:
        ray.init(num_cpus=max(1, math.ceil(config.concurrent * config.cpus_per_trial)), include_dashboard=False,
                 **quiet)
    try:
        _check_resources(config, local=not address)
        yield
    finally:
        ray.shutdown()


def _check_resources(config: SearchConfig, local: bool) -> None:
    """A trial that asks for more than the cluster has would wait forever: say so in one line."""
    have = ray.cluster_resources()
    for key, name, want in (("CPU", "cpus_per_trial", config.cpus_per_trial),
                            ("GPU", "gpus_per_trial", config.gpus_per_trial)):
        if want > have.get(key, 0):
            message = f"{name}: got {want:g}; allowed: at most the {have.get(key, 0):g} {key}s this Ray cluster has"
            if local:
                raise UserError(message)
            warnings.warn(message + " (now; an autoscaling cluster may add more)", stacklevel=2)


@contextmanager
def _quiet_tune():
    """nas's progress bar and records report, Tune stays silent: its new console output prints a banner
    even at verbose=0 (the legacy reporter at verbose=0 prints nothing), and it logs an error listing
    the trials that errored, which the records already hold with their notes."""
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    tune_log = logging.getLogger("ray.tune")
    level = tune_log.level
    tune_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        tune_log.setLevel(level)
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


def _trainable(job: Job):
    resources = {"cpu": job.config.cpus_per_trial, "gpu": job.config.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(_trial, job=job), resources)


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every point of a decision grid, in a fixed order."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _trial_dirname(trial) -> str:
    return f"trial-{trial.trial_id}"  # Tune's default spells out the whole config


def _sessions(ray_dir: Path) -> list[Path]:
    found = [p for p in ray_dir.glob("session-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))


def _new_session(ctx: Context, job: Job, path: Path, journal: Path, total: int,
                 previous: list[dict]) -> tune.Tuner | None:
    """A Tune experiment for the trials still wanted (None when a grid has no point left to run)."""
    config = ctx.config
    writer = JournalWriter(journal, total)
    if ctx.grid is not None:
        done = {json.dumps(r["decisions"], sort_keys=True) for r in previous
                if r["state"] in ("complete", "pruned", "failed")}
        points = [p for p in grid_points(ctx.grid) if json.dumps(p, sort_keys=True) not in done]
        param_space, searcher, samples = {GRID_KEY: tune.grid_search(points)}, None, 1
        if not points:
            return None
    else:
        param_space, samples = None, config.trials - _finished(previous)
        searcher = make_searcher(config, ctx.propose, previous, ctx.evaluated)
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=_make_scheduler(config), num_samples=samples,
                                  max_concurrent_trials=config.concurrent, reuse_actors=True,
                                  trial_dirname_creator=_trial_dirname)
    run_config = tune.RunConfig(name=path.name, storage_path=str(path.parent), verbose=0,
                                failure_config=tune.FailureConfig(max_failures=MAX_FAILURES, fail_fast=False),
                                callbacks=[writer], stop=EnoughTrials(writer))
    return tune.Tuner(_trainable(job), param_space=param_space, tune_config=tune_config, run_config=run_config)


def search(ctx: Context, run_dir: Path, on_trial: Callable[[dict], None]) -> None:
    """Run trials until ``ctx.config.trials`` have finished in total (a grid: until every point ran once);
    ``on_trial`` gets each finished record."""
    config = ctx.config
    ray_dir = Path(run_dir).resolve() / RAY_DIR
    journal = ray_dir / JOURNAL_FILE
    total = len(grid_points(ctx.grid)) if ctx.grid is not None else config.trials
    previous = records(run_dir, config)
    if _finished(previous) >= total:
        return
    ray_dir.mkdir(parents=True, exist_ok=True)
    _listeners[str(journal)] = on_trial
    try:
        with connected(config), _quiet_tune():
            sessions = _sessions(ray_dir)
            last = sessions[-1] if sessions else None
            if last and not (ray_dir / f"{last.name}.done").exists() and tune.Tuner.can_restore(last):
                # a killed driver: the interrupted session goes on (its unfinished trials run again)
                tuner = tune.Tuner.restore(str(last), _trainable(job_for(ctx, previous)), resume_unfinished=True,
                                           resume_errored=False)
                tuner.fit()
                (ray_dir / f"{last.name}.done").touch()
            previous = records(run_dir, config)
            if _finished(previous) < total:
                number = int(last.name.split("-", 1)[1]) + 1 if last else 1
                path = ray_dir / f"session-{number}"
                tuner = _new_session(ctx, job_for(ctx, previous), path, journal, total, previous)
                if tuner is not None:
                    tuner.fit()
                    (ray_dir / f"{path.name}.done").touch()
    finally:
        _listeners.pop(str(journal), None)
