"""The Ray Tune backend: the same trials as the Optuna backend, run as Ray Tune trials on a Ray cluster
(or on a local Ray instance it starts).

What runs where:
- the driver (this process) holds the Tune loop. A search proposes with ``NasOptunaSearch`` and ASHA
  stops poor candidates (:mod:`.ray_searcher`); a grid (``ctx.grid``) is one ``tune.grid_search`` over
  its points.
- each trial runs ``run_candidate`` in a Ray worker (:mod:`.ray_worker`).
- the driver tells each finished trial to the run's Optuna study (:mod:`.ray_records`), the one store
  of the run's records. Each driver run is a new Tune experiment (``ray/session-N``) for the trials
  still wanted, its sampler warm-started from the study: a killed driver's trials that had not
  finished run again, and nothing is read back from Tune's pickled state.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import secrets
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path

import ray
from ray import tune

from ..errors import Interrupted, UserError
from . import optuna_backend
from .candidate import Context
from .config import SearchConfig
from .ray_records import FINISHED_STATES, RAY_DIR, EnoughTrials, StudyWriter, finished_count, next_session
from .ray_records import records as study_records
from .ray_searcher import make_scheduler, make_searcher
from .ray_worker import GRID_KEY, Job, job_for, trainable

MAX_FAILURES = 1                 # Tune restarts a trial whose worker died once (a node lost); errors in nas are
                                 # caught in the trial and recorded failed, since a retry would fail the same way
QUIET = {"log_to_driver": False, "logging_level": logging.ERROR}


# ---------------------------------------------------------------------------------------------------------------
# The backend interface (nas.search.backend.Backend)


def records(run_dir: Path, config: SearchConfig) -> list[dict]:
    """Finished trials in the order they finished; the Optuna backend's record keys (and trial_id, node_id,
    worker)."""
    return study_records(Path(run_dir), config)


def recover_interrupted(run_dir: Path, config: SearchConfig) -> int:
    """The study holds finished trials only (a killed driver's unfinished trials are run again by the next
    :func:`search`): nothing to queue again, but a torn last journal record is set aside before anything
    is appended."""
    journal = Path(run_dir) / optuna_backend.STORAGE_FILE
    if journal.exists():
        optuna_backend.repair_journal(journal)
    return 0


def search(ctx: Context, run_dir: Path, on_trial: Callable[[dict], None]) -> None:
    """Run trials until ``ctx.config.trials`` have finished in total (a grid: until every point ran once);
    ``on_trial`` gets each finished record."""
    config = ctx.config
    run_dir = Path(run_dir).resolve()
    total = len(grid_points(ctx.grid)) if ctx.grid is not None else config.trials
    previous = study_records(run_dir, config)
    if finished_count(previous) >= total:
        return
    (run_dir / RAY_DIR).mkdir(parents=True, exist_ok=True)
    writer = StudyWriter(run_dir, config, ctx.propose, total, on_trial)
    # One driver per run: the caller holds the run alone (nas.search.run_folder.working_on).
    with connected(config), _quiet_tune():
        tuner = _new_session(ctx, job_for(ctx, previous), next_session(run_dir / RAY_DIR), writer, previous)
        if tuner is not None:
            tuner.fit()


# ---------------------------------------------------------------------------------------------------------------
# Ray and Tune


@contextmanager
def connected(config: SearchConfig):
    """Ray for the search: the caller's (already initialised), the cluster at ray_address / RAY_ADDRESS,
    or a local instance with room for ``concurrent`` trials, started here and shut down when the search
    ends, fails or is stopped (SIGINT, SIGTERM)."""
    if ray.is_initialized():
        _check_resources(config, local=False)
        yield
        return
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    sigterm = _sigterm_handler()
    with nullcontext() if address else _run_token():
        if address:
            _join_cluster(address, "ray_address" if config.ray_address else "RAY_ADDRESS")
        else:
            _start_local(config)
        sigterm.install()
        try:
            _check_resources(config, local=not address)
            yield
        except (KeyboardInterrupt, SystemError) as exc:
            signalled = _signal_behind(exc)
            if signalled is None:
                raise
            if sigterm.received:
                raise Terminated() from None
            raise signalled from None
        finally:
            ray.shutdown()
            sigterm.restore()


def _signal_behind(exc: BaseException) -> BaseException | None:
    """The signal's exception (KeyboardInterrupt, or nas's Interrupted from run_trials' handler), also when it
    was raised inside Ray's Cython wait, which lets it out as SystemError ("returned a result with an
    exception set") caused by it; None for any other error."""
    if isinstance(exc, KeyboardInterrupt):
        return exc
    cause = exc.__cause__ or exc.__context__
    return cause if isinstance(cause, (KeyboardInterrupt, Interrupted)) else None


class Terminated(KeyboardInterrupt):
    """The driver got SIGTERM: a KeyboardInterrupt (what Ray lets out of its waits) whose exit status is 143."""

    exit_status = 128 + signal.SIGTERM


class _sigterm_handler:
    """Ray's core worker installs its own SIGTERM handler in ray.init, which aborts the process and skips
    every ``finally`` (a local instance is left running). Python's handler from before ray.init is put
    back after it; where that was the default, SIGTERM raises KeyboardInterrupt (Ray turns any other
    exception raised in its waits into SystemExit(1)), which :func:`connected` turns into
    :class:`Terminated`: the driver ends through its ``finally`` blocks (Ray shut down, outputs written)."""

    def __init__(self):
        self.active = threading.current_thread() is threading.main_thread()
        self.before = signal.getsignal(signal.SIGTERM) if self.active else None
        self.received = False

    def install(self) -> None:
        if self.active:
            signal.signal(signal.SIGTERM, self._stop if self.before in (signal.SIG_DFL, None) else self.before)

    def restore(self) -> None:
        if self.active:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.before is None else self.before)

    def _stop(self, signum, frame):
        self.received = True
        raise KeyboardInterrupt


def _join_cluster(address: str, where: str) -> None:
    check_authentication(where, address)
    try:  # Ray Client (ray://) takes no driver options
        ray.init(address) if address.startswith("ray://") else ray.init(address=address, **QUIET)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"{where}: got {address!r}, no Ray cluster answered ({first}); allowed: auto, HOST:6379"
                        " or ray://HOST:10001 of a running cluster, or unset for a local one") from None


def _start_local(config: SearchConfig) -> None:
    """A local Ray instance without a dashboard. Ray's services listen on every interface and Ray turns a
    node address of 127.0.0.1 into the machine's own (it has no setting for loopback only), so
    :func:`_run_token` makes them refuse any caller without this run's token."""
    ray.init(address="local", num_cpus=max(1, math.ceil(config.concurrent * config.cpus_per_trial)),
             include_dashboard=False, **QUIET)  # "local": a new instance, not any Ray running on this machine


@contextmanager
def _run_token():
    """Token authentication with a fresh random token for a local instance (Ray's RAY_AUTH_MODE=token;
    its services and workers inherit the token from this process's environment). Left alone when the
    user set RAY_AUTH_MODE. Ray reads the mode when imported: its config is read again on entry and exit."""
    from ray._raylet import AuthenticationTokenLoader, Config

    if "RAY_AUTH_MODE" in os.environ:
        yield
        return
    before = os.environ.get("RAY_AUTH_TOKEN")
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))

    def reread():
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()

    reread()
    try:
        yield
    finally:
        os.environ.pop("RAY_AUTH_MODE", None)
        if before is None:
            os.environ.pop("RAY_AUTH_TOKEN", None)
        else:
            os.environ["RAY_AUTH_TOKEN"] = before
        reread()


def check_authentication(where: str, address: str) -> None:
    """A cluster with token authentication that gets no token (or a wrong one) from this machine makes
    ``ray.init`` print 20 s of warnings and then fail without saying why: ask the cluster once, as
    ``ray.init`` would (Ray's GcsClient, which fails at once on a rejected token), and say so in one line."""
    from ray._private.services import canonicalize_bootstrap_address
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    if address.startswith("ray://"):
        return  # Ray Client says what went wrong itself
    try:
        target = canonicalize_bootstrap_address(address)  # auto: the cluster this node belongs to
    except Exception:
        return  # ray.init says what is wrong with the address
    if not target or not _answers(target):
        return
    try:
        with _stderr_silenced():  # Ray's C++ client logs the rejection too
            GcsClient(address=target)
    except AuthenticationError:
        here = "rejected the token found here" if os.environ.get("RAY_AUTH_MODE") == "token" else \
            "RAY_AUTH_MODE is not token here"
        raise UserError(f"{where}: the Ray cluster at {address!r} uses token authentication and {here}; allowed: "
                        "RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or in ~/.ray/auth_token, or "
                        "a file named by RAY_AUTH_TOKEN_PATH), set before running nas") from None
    except Exception:
        return  # anything else: ray.init says it


def _answers(host_port: str, seconds: float = 3.0) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except (OSError, ValueError):
        return False
    return True


@contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null for the block (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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
    the trials that errored, which the records already hold with their notes. Tune's own SIGINT handler
    is off: Ctrl-C raises KeyboardInterrupt here rather than ending the session early and quietly. Its
    per-trial loggers (CSV, JSON, TensorBoard) are off too: the records come from nas's own callback, and
    tensorboardX's exit handler deadlocked a driver whose SIGTERM had cut one of its queue writes."""
    names = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_SIGINT_HANDLER": "1", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
    before = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    tune_log = logging.getLogger("ray.tune")
    level = tune_log.level
    tune_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        tune_log.setLevel(level)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every point of a decision grid, in a fixed order."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _trial_dirname(trial) -> str:
    return f"trial-{trial.trial_id}"  # Tune's default spells out the whole config


def _new_session(ctx: Context, job: Job, path: Path, writer: StudyWriter, previous: list[dict]) -> tune.Tuner | None:
    """A Tune experiment for the trials still wanted (None when a grid has no point left to run)."""
    config = ctx.config
    if ctx.grid is not None:
        done = {json.dumps(r["decisions"], sort_keys=True) for r in previous if r["state"] in FINISHED_STATES}
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
