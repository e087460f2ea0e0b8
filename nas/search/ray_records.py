"""The Ray backend's records: the JSONL journal of finished trials, and the sessions bookkeeping.

- ``ray/trials.jsonl``: a driver-side Tune callback (:class:`JournalWriter`) appends each finished trial's
  record as one JSON line, flushed and fsynced: the run's records, readable without Ray.
- ``ray/session-N/`` is a Tune experiment (Tuner storage); ``ray/session-N.done`` marks one that ran to
  its end. An unfinished last session is one a killed driver left: it is restored, not started afresh.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ray import tune

from .journal_repair import set_aside_torn_tail
from .outputs import RECORD_KEYS
from .ray_worker import GRID_KEY, KNOWN_KEY

RAY_DIR = "ray"
JOURNAL_FILE = "trials.jsonl"
FINISHED_STATES = ("complete", "pruned", "failed")


def journal_path(run_dir: Path) -> Path:
    return Path(run_dir) / RAY_DIR / JOURNAL_FILE


def read_journal(path: Path) -> list[dict]:
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


def records(run_dir: Path) -> list[dict]:
    """Finished trials in the order they finished; the Optuna backend's record keys (and trial_id)."""
    return [{"number": number, "state": r.get("state"), "decisions": r.get("decisions") or {},
             **{k: r.get(k) for k in RECORD_KEYS}, "trial_id": r.get("trial_id")}
            for number, r in enumerate(read_journal(journal_path(run_dir)))]


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
    record["note"] = note
    if state != "complete":  # as in the Optuna backend: no reward for a trial that did not complete
        record["reward"] = None
    return record


class JournalWriter(tune.Callback):
    """Appends each finished trial's record to the journal (on the driver), once per Tune trial and no more
    than ``total`` in all: after a restore Tune may run again a trial whose end it had not yet saved."""

    def __init__(self, path: Path, total: int):
        self.path, self.total = str(path), total
        self.written: set[str] = set()

    def setup(self, **info):
        set_aside_torn_tail(Path(self.path))  # a cut last line is kept in a backup, never appended to
        self.written = {r["trial_id"] for r in read_journal(Path(self.path))}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._write(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._write(trial, error_text(trial))

    def _write(self, trial, error: str | None) -> None:
        if trial.trial_id in self.written or len(self.written) >= self.total:
            return
        record = {"trial_id": trial.trial_id, **record_from_result(trial.last_result, error)}
        if not record["decisions"]:  # it died before its first report
            record["decisions"] = {k: v for k, v in trial.config.get(GRID_KEY, trial.config).items() if k != KNOWN_KEY}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.written.add(trial.trial_id)


class EnoughTrials(tune.Stopper):
    """Ends the Tune run once the journal holds every trial wanted (pickled with the writer it reads)."""

    def __init__(self, writer: JournalWriter):
        self.writer = writer

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return len(self.writer.written) >= self.writer.total


class JournalFollower:
    """Hands each record appended to the journal to ``on_trial``, like ``tail -f``: a thread reads the
    journal every ``interval`` seconds while the block runs, and once more at its end.

    Why not a hook in the writer: Tune pickles its callbacks with the experiment, and Tuner.restore brings
    them back without the hooks of the process that resumes it.
    """

    def __init__(self, run_dir: Path, on_trial: Callable[[dict], None], interval: float = 0.5):
        self.run_dir, self.on_trial, self.interval = run_dir, on_trial, interval
        self.sent = len(records(run_dir))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="nas-journal-follower", daemon=True)

    def __enter__(self) -> JournalFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._send_new()

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            self._send_new()

    def _send_new(self) -> None:
        new = records(self.run_dir)[self.sent:]
        self.sent += len(new)
        for record in new:
            self.on_trial(record)


class Sessions:
    """The Tune experiments of a run, ``ray/session-1``, ``ray/session-2``, ..., and which ran to their end."""

    def __init__(self, ray_dir: Path):
        self.ray_dir = Path(ray_dir)

    def all(self) -> list[Path]:
        found = [p for p in self.ray_dir.glob("session-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
        return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))

    def interrupted(self) -> Path | None:
        """The last session, when a killed driver left it unfinished and Tune can restore it."""
        sessions = self.all()
        if not sessions or self.is_done(sessions[-1]) or not tune.Tuner.can_restore(sessions[-1]):
            return None
        return sessions[-1]

    def next(self) -> Path:
        sessions = self.all()
        return self.ray_dir / f"session-{int(sessions[-1].name.split('-', 1)[1]) + 1 if sessions else 1}"

    def is_done(self, session: Path) -> bool:
        return (self.ray_dir / f"{session.name}.done").exists()

    def mark_done(self, session: Path) -> None:
        (self.ray_dir / f"{session.name}.done").touch()
