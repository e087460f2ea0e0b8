"""The Ray backend's records: every finished Tune trial is told to the run's Optuna study.

The study is the Optuna backend's (``study.journal``, study name ``nas``), so a Ray run is read like any
other: by nas (:func:`records`), by ``optuna.load_study`` and by optuna-dashboard. It is the run's one
store of records. Each Ray trial is a finished Optuna trial (COMPLETE with its reward, or the
accuracy and cost for nsga2; PRUNED with its per-epoch curve; FAIL) whose params are the decisions
and whose user attributes hold what nas measured, plus ``ray_trial_id``, ``node_id`` and ``worker``
(hostname:pid) of the Ray worker that ran it.

``ray/session-N/`` is the Tune experiment of the N-th driver run (Tuner storage: Ray's logs and its
pickled state). nas never reads it back: a resumed run starts a new session from the study.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial
from ray import tune

from . import optuna_backend
from .config import SearchConfig
from .outputs import RECORD_KEYS
from .ray_worker import GRID_KEY, KNOWN_KEY

RAY_DIR = "ray"
FINISHED_STATES = ("complete", "pruned", "failed")
RAY_ATTRS = ("ray_trial_id", "node_id", "worker")   # user attributes a Ray trial adds to the Optuna backend's


def study_path(run_dir: Path) -> Path:
    return Path(run_dir) / optuna_backend.STORAGE_FILE


def records(run_dir: Path, config: SearchConfig) -> list[dict]:
    """Finished trials in the order they finished: the Optuna backend's records, with trial_id (Ray's),
    node_id and worker."""
    if not study_path(run_dir).exists():
        return []
    study = optuna_backend.open_study(Path(run_dir), config)
    return [_with_ray_attrs(t) for t in study.get_trials(deepcopy=False)]


def _with_ray_attrs(trial: optuna.trial.FrozenTrial) -> dict:
    record = optuna_backend.to_record(trial)
    record["trial_id"] = trial.user_attrs.get("ray_trial_id")
    record.update({k: trial.user_attrs.get(k) for k in RAY_ATTRS[1:]})
    return record


def finished_count(rows: list[dict]) -> int:
    return sum(r["state"] in FINISHED_STATES for r in rows)


def trial_state(result: dict | None, error: bool) -> str:
    """complete, pruned or failed, from a trial's last result (see ray_worker.TuneTrialIO)."""
    state = ((result or {}).get("nas") or {}).get("state")
    if error:
        return "failed"
    return state if state in FINISHED_STATES else "pruned"  # stopped by ASHA mid-training


def error_text(trial) -> str:
    """One line from Tune's error file: the exception of a traceback, or the message of a dead worker."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else str(trial.get_error() or "")
    except Exception:
        text = ""
    last = text.rsplit("Failure #", 1)[-1]  # the file holds every failure, the retries' included
    lines = [line.strip() for line in last.splitlines()[1:] if line.strip()]
    line = (lines[-1] if "Traceback" in last else lines[0]) if lines else "the worker died"
    return f"trial error: {line}"[:300]


def record_from_result(result: dict | None, error: str | None) -> dict:
    """A finished Tune trial's record, from its last result (an ASHA-stopped trial's is an epoch's)."""
    attrs = (result or {}).get("nas") or {}
    state = trial_state(result, error is not None)
    note = error or attrs.get("note")
    if state == "pruned" and attrs.get("state") == "running":
        note = (f"stopped early by ASHA after epoch {result['epoch']}: held-out accuracy {result['accuracy']:.3f} "
                "is below the median there")
    record = {"state": state, "decisions": attrs.get("decisions") or {}, **{k: attrs.get(k) for k in RECORD_KEYS}}
    record.update({k: attrs.get(k) for k in RAY_ATTRS[1:]})
    record["note"] = note
    if state != "complete":  # as in the Optuna backend: no reward for a trial that did not complete
        record["reward"] = None
    return record


def replayed_distributions(propose: Callable, decisions: dict) -> dict[str, CategoricalDistribution] | None:
    """The decisions ``propose`` asks for when given a trial's recorded ones, each with its options;
    None when it can't replay them."""
    asked = {}

    def choose(name, options):
        asked[name] = CategoricalDistribution(options)
        return decisions[name]

    try:
        propose(choose)
    except Exception:
        return None
    return asked


def frozen_trial(record: dict, distributions: dict[str, CategoricalDistribution], multi: bool,
                 trial_id: str) -> optuna.trial.FrozenTrial:
    """A finished Optuna trial holding a Ray trial's record, as the Optuna backend would have stored it."""
    params = {name: record["decisions"][name] for name in distributions}
    attrs = {k: record.get(k) for k in RECORD_KEYS if record.get(k) is not None}
    attrs.update({k: record.get(k) for k in RAY_ATTRS[1:] if record.get(k) is not None}, ray_trial_id=trial_id)
    common = {"params": params, "distributions": distributions, "user_attrs": attrs}
    if record["state"] == "complete" and record.get("reward") is not None:
        values = [record["accuracy"], record["cost"]] if multi else [record["reward"]]
        return create_trial(values=values, **common)
    curve = {} if multi else dict(enumerate(record.get("curve") or []))
    state = TrialState.PRUNED if record["state"] == "pruned" else TrialState.FAIL
    return create_trial(state=state, intermediate_values=curve, **common)


class StudyWriter(tune.Callback):
    """On the driver: tells each finished Tune trial to the run's Optuna study, once per Tune trial and no
    more than ``total`` finished trials in the run, then hands its record to ``on_trial``.

    Tune pickles its callbacks with the experiment (``tuner.pkl``); the open study and ``on_trial`` (a
    progress bar) stay out of that copy, which nas never reads back.
    """

    def __init__(self, run_dir: Path, config: SearchConfig, propose: Callable, total: int,
                 on_trial: Callable[[dict], None]):
        self.run_dir, self.config, self.propose = Path(run_dir), config, propose
        self.total, self.on_trial = total, on_trial
        self.multi = optuna_backend.multi_objective(config)
        self.finished = finished_count(records(run_dir, config))
        self.written: set[str] = set()
        self._study: optuna.Study | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_study": None, "on_trial": None}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._write(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._write(trial, error_text(trial))

    def _write(self, trial, error: str | None) -> None:
        if trial.trial_id in self.written or self.finished >= self.total:
            return
        record = record_from_result(trial.last_result, error)
        if not record["decisions"]:  # it died before its first report
            record["decisions"] = {k: v for k, v in trial.config.get(GRID_KEY, trial.config).items() if k != KNOWN_KEY}
        distributions = replayed_distributions(self.propose, record["decisions"]) or {}
        if self._study is None:
            self._study = optuna_backend.open_study(self.run_dir, self.config)
        self._study.add_trial(frozen_trial(record, distributions, self.multi, trial.trial_id))
        self.written.add(trial.trial_id)
        self.finished += 1
        if self.on_trial is not None:  # the driver is the study's one writer: the last trial is this one
            self.on_trial(_with_ray_attrs(self._study.get_trials(deepcopy=False)[-1]))

    def enough(self) -> bool:
        return self.finished >= self.total


class EnoughTrials(tune.Stopper):
    """Ends the Tune run once the study holds every trial wanted."""

    def __init__(self, writer: StudyWriter):
        self.writer = writer

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.writer.enough()


def next_session(ray_dir: Path) -> Path:
    """``ray/session-N`` for this driver run: one past the highest so far."""
    numbers = [int(p.name.split("-", 1)[1]) for p in Path(ray_dir).glob("session-*")
               if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return Path(ray_dir) / f"session-{max(numbers, default=0) + 1}"
