"""The Ray Tune backend: the same trials as the Optuna backend, run as Ray Tune trials on a Ray cluster
(or on a local Ray instance it starts).

What runs where:
- the driver (this process) holds the Tune loop. A search proposes with ``NasOptunaSearch`` and ASHA
  stops poor candidates (:mod:`.ray_searcher`); a grid (``ctx.grid``) is one ``tune.grid_search`` over
  its points.
- each trial runs ``run_candidate`` in a Ray worker (:mod:`.ray_worker`).
- the run's records are a JSONL journal the driver appends to; sessions are Tune experiments, and a
  killed driver's session is restored with ``Tuner.restore`` (:mod:`.ray_records`). Trials still wanted
  after that (``trials=`` raised, or lost ones) run in a new, warm-started session.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import ray
from ray import tune

from ..errors import UserError
from .candidate import Context
from .config import SearchConfig
from .ray_records import RAY_DIR, EnoughTrials, JournalFollower, JournalWriter, Sessions, finished_count, journal_path
from .ray_records import records as journal_records
from .ray_searcher import make_scheduler, make_searcher
from .ray_worker import GRID_KEY, Job, job_for, trainable

MAX_FAILURES = 1                 # Tune restarts a trial whose worker died once (a node lost); errors in nas are
                                 # caught in the trial and recorded failed, since a retry would fail the same way


# ---------------------------------------------------------------------------------------------------------------
# The backend interface (nas.search.backend.Backend)


def records(run_dir: Path, config: SearchConfig) -> list[dict]:
    """Finished trials in the order they finished; the Optuna backend's record keys (and trial_id)."""
    return journal_records(run_dir)


def recover_interrupted(run_dir: Path, config: SearchConfig) -> int:
    """Nothing to set aside: the journal holds finished trials only, and a killed driver's session is
    restored (its unfinished trials run again) by :func:`search`."""
    return 0


def search(ctx: Context, run_dir: Path, on_trial: Callable[[dict], None]) -> None:
    """Run trials until ``ctx.config.trials`` have finished in total (a grid: until every point ran once);
    ``on_trial`` gets each finished record."""
    config = ctx.config
    run_dir = Path(run_dir).resolve()
    ray_dir = run_dir / RAY_DIR
    total = len(grid_points(ctx.grid)) if ctx.grid is not None else config.trials
    previous = journal_records(run_dir)
    if finished_count(previous) >= total:
        return
    ray_dir.mkdir(parents=True, exist_ok=True)
    sessions = Sessions(ray_dir)
    with JournalFollower(run_dir, on_trial), connected(config), _quiet_tune():
        interrupted = sessions.interrupted()
        if interrupted:  # a killed driver: the interrupted session goes on (its unfinished trials run again)
            tuner = tune.Tuner.restore(str(interrupted), trainable(job_for(ctx, previous)), resume_unfinished=True,
                                       resume_errored=False)
            tuner.fit()
            sessions.mark_done(interrupted)
        previous = journal_records(run_dir)
        if finished_count(previous) < total:
            path = sessions.next()
            tuner = _new_session(ctx, job_for(ctx, previous), path, journal_path(run_dir), total, previous)
            if tuner is not None:
                tuner.fit()
                sessions.mark_done(path)


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


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every point of a decision grid, in a fixed order."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _trial_dirname(trial) -> str:
    return f"trial-{trial.trial_id}"  # Tune's default spells out the whole config


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
        param_space, samples = None, config.trials - finished_count(previous)
        searcher = make_searcher(config, ctx.propose, previous, ctx.evaluated)
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=make_scheduler(config), num_samples=samples,
                                  max_concurrent_trials=config.concurrent, reuse_actors=True,
                                  trial_dirname_creator=_trial_dirname)
    run_config = tune.RunConfig(name=path.name, storage_path=str(path.parent), verbose=0,
                                failure_config=tune.FailureConfig(max_failures=MAX_FAILURES, fail_fast=False),
                                callbacks=[writer], stop=EnoughTrials(writer))
    return tune.Tuner(trainable(job), param_space=param_space, tune_config=tune_config, run_config=run_config)
