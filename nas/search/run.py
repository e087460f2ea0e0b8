"""`nas search`: resolve the settings, open (or resume) the run directory, run the backend, write outputs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml

from ..data import check_name
from ..errors import Interrupted, UserError
from ..folders import check_output_folder, check_writable_files
from ..io import remove_stale_temporaries, updating, write_text
from ..space import load_space, sample
from . import interrupts, outputs
from .backend import backend_for
from .candidate import Context
from .config import SearchConfig, parse_pairs, resolve_config, resolve_new_run
from .evaluation import make_configured_evaluator
from .preflight import check_candidates, check_device, proxy_resolution
from .run_folder import (
    CONFIG_FILE,
    TRAINED_SIDE,
    as_settings,
    check_same_objective,
    stored_settings,
    trained_side,
    working_on,
)


@dataclass
class SearchResult:
    run_dir: Path
    config: SearchConfig
    records: list[dict]
    best: dict | None
    resumed: bool
    final: list[dict] = field(default_factory=list)   # the final selection's trial records (nas.search.final)


def prepare_run(pairs: list[str]) -> tuple[SearchConfig, Path, bool]:
    """Settings and run directory. An existing run directory resumes: its stored settings, then the new key=value
    (refused when they change what the run maximises; see nas.search.run_folder)."""
    given = parse_pairs(pairs)
    out = given.get("out")
    if out:
        check_output_folder("out", out, "a new folder or a run directory made by nas search")
        check_writable_files("out", Path(out))
    stored = stored_settings(Path(out)) if out else None
    config, _ = resolve_config(pairs, stored)
    space = load_space(config.space)  # a bad space fails before anything is written
    if stored is None and space.proxy_training:  # the space's own proxy, under everything the user gave
        config = resolve_new_run(pairs, space)
    side = proxy_resolution(config)
    if stored is not None:
        before = as_settings(stored)
        any_scored = has_scored_trial(Path(out), before)
        trained = trained_side(Path(out), stored, config, side, any_scored, "resolution" in given)
        check_same_objective(Path(out), before, config, any_scored=any_scored, sides=(trained, side))
    check_name(config.dataset)
    if config.objective == "energy":
        from ..evaluate.energy import energy_available

        energy_available()  # one line, exit 2, instead of every trial failing
    check_device(config)
    check_candidates(partial(sample, space), side, config.seed)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(config.out) if config.out else Path("runs") / f"{Path(config.space).stem}-{stamp}"
    check_output_folder("out", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Two processes started on one new out= (a shared run) both find no run: under the lock only one makes
    # it, and the other then joins it as a resume, its settings checked, instead of replacing config.yaml.
    with updating(run_dir / CONFIG_FILE):
        made_meanwhile = stored is None and (run_dir / CONFIG_FILE).exists()
        if not made_meanwhile:
            remove_stale_temporaries(run_dir)  # what a kill -9 mid-write of an earlier run left
            write_text(run_dir / CONFIG_FILE, yaml.safe_dump(
                {**config.to_dict(), "out": str(run_dir), TRAINED_SIDE: side}, sort_keys=False))
    if made_meanwhile:
        return prepare_run(pairs)
    return config, run_dir, stored is not None


def has_scored_trial(run_dir: Path, config: SearchConfig) -> bool:
    """Whether a trial of the run in ``run_dir`` was scored (completed or pruned) under its stored settings."""
    try:
        found = backend_for(config.backend).records(run_dir, config)
    except Exception:  # noqa: BLE001 - an unreadable (e.g. torn, not yet repaired) journal: assume it was
        return True
    return any(r["state"] in ("complete", "pruned") for r in found)


def build_context(config: SearchConfig, evaluator: Callable | None = None, seen_scores=None) -> Context:
    space = load_space(config.space)
    evaluator = evaluator or make_configured_evaluator(config, seen_scores)
    return Context(config, partial(sample, space), evaluator)


def run_search(pairs: list[str], evaluator: Callable | None = None, progress: bool = True,
               say: Callable[[str], None] = print) -> SearchResult:
    """Run (or resume) a search. ``evaluator(spec, report) -> Evaluation`` replaces the configured one."""
    config, run_dir, resumed = prepare_run(pairs)
    with working_on(run_dir, config.backend):
        result = run_trials(config, run_dir, resumed, lambda seen: build_context(config, evaluator, seen), progress,
                            say)
        if config.final_top_k > 0:  # then the best few again, longer, under several seeds (nas.search.final)
            from . import final

            final_records = final.run_final(config, run_dir, result.records,
                                            final.evaluator_factory(config, evaluator), say)
            result.final = final_records
            result.best = final.write_outputs(run_dir, config, result.records, final_records)
    return result


def wait_for_other_processes(config: SearchConfig, run_dir: Path, say: Callable[[str], None] = print) -> None:
    """Return once no other process sharing the run is still evaluating one of its trials: this process's outputs,
    its final selection and its scaling grid's winner then come from the whole run, the same in every process."""
    backend = backend_for(config.backend)

    def running() -> list[dict]:
        found = [r for r in backend.records(run_dir, config) if r["state"] == "running"]
        if found:  # (the lone process's usual case is one read) a killed process's trial stops counting as running
            backend.recover_interrupted(run_dir, config)
            found = [r for r in backend.records(run_dir, config) if r["state"] == "running"]
        return found

    interrupts.wait_while(running, lambda found: f"waiting for trial(s) {', '.join(str(r['number']) for r in found)}, "
                          "which other processes are evaluating, so the outputs cover the whole run", say)


def run_trials(config: SearchConfig, run_dir: Path, resumed: bool, make_context: Callable[[list], Context],
               progress: bool = True, say: Callable[[str], None] = print) -> SearchResult:
    """The loop shared by `nas search` and the `nas scale` grid: resume, run the backend, write outputs.

    SIGINT / SIGTERM stop it (nas.search.interrupts): the running trials go back to the queue, the outputs are
    written and Interrupted is raised (the CLI exits 130 / 143); the next run_trials on the folder runs them.
    When every trial of the run failed, a UserError line carries the first error."""
    check_device(config)
    backend = backend_for(config.backend)
    backend.recover_interrupted(run_dir, config)
    previous = backend.records(run_dir, config)
    done_before = sum(r["state"] in FINISHED for r in previous)
    if resumed:
        say(f"resuming {run_dir}: {done_before} of {config.trials} trials finished")
    ctx = make_context([r["proxy_score"] for r in previous if r.get("proxy_score") is not None])
    remember_earlier_trials(ctx, previous)
    bar = ProgressBar(config.trials, done_before, previous, enabled=progress)
    interrupted = None
    with interrupts.raised_on_signals():
        try:
            backend.search(ctx, run_dir, bar.update_with)
            wait_for_other_processes(config, run_dir, say)
        except Interrupted as exc:
            interrupted = exc
        finally:
            with interrupts.deferred():  # a second signal waits until the outputs are written
                bar.close()
                if interrupted:
                    backend.recover_interrupted(run_dir, config)  # this process's trials back in the queue
                records = backend.records(run_dir, config)
                best = outputs.write_all(run_dir, records, config)
    if interrupted:
        raise Interrupted(interrupted.signum, f"the running trials go back to the queue; outputs written to "
                                              f"{run_dir}; the same command resumes")
    check_some_trial_ran(records)
    return SearchResult(run_dir, config, records, best, resumed)


FINISHED = ("complete", "pruned", "failed")


def check_some_trial_ran(records: list[dict]) -> None:
    """A run whose every finished trial failed ends with the first error (a mistake in the settings, mostly)."""
    finished = [r for r in records if r["state"] in FINISHED]
    if finished and all(r["state"] == "failed" for r in finished):
        first = min(finished, key=lambda r: r["number"])
        raise UserError(f"every trial failed ({len(finished)}); the first: {first.get('note') or 'no message'}; "
                        "allowed: settings under which a candidate trains (trials.csv has every error)")


def remember_earlier_trials(ctx: Context, previous: list[dict]) -> None:
    """An architecture evaluated (or timed) before a restart is not trained (or timed) again."""
    for r in previous:
        if r["state"] == "complete" and r.get("spec_hash") and r.get("accuracy") is not None:
            ctx.evaluated.setdefault(r["spec_hash"], {"accuracy": r["accuracy"], "seconds": r.get("seconds") or 0})
        if ctx.config.objective in ("latency", "energy") and r.get("spec_hash") and r.get("cost") is not None:
            ctx.measured.setdefault(ctx.measured_key(r["spec_hash"]), r["cost"])


class ProgressBar:
    """Finished trials with the best reward so far: a tqdm bar on a terminal; when stdout or stderr is not
    a terminal (a log file, a pipe, CI), one plain line per trial on stdout instead of \\r frames."""

    def __init__(self, total: int, done: int, previous: list[dict], enabled: bool):
        best = outputs.best_record(previous)
        self.best = best["reward"] if best else None
        self.total, self.done, self.enabled = total, min(done, total), enabled
        self.bar = None
        if enabled and sys.stdout.isatty() and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=self.done, desc="trials", unit="trial", dynamic_ncols=True)
            self._postfix()

    def _best_text(self) -> str:
        return "best reward " + (f"{self.best:.4f}" if self.best is not None else "-")

    def _postfix(self):
        self.bar.set_postfix_str(self._best_text())

    def update_with(self, record: dict) -> None:
        if record["state"] == "complete" and record.get("reward") is not None:
            self.best = record["reward"] if self.best is None else max(self.best, record["reward"])
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self._postfix()
        elif self.enabled:
            reward = f", reward {record['reward']:.4f}" if record.get("reward") is not None else ""
            state = "skipped untrained (could not beat the best)" if record.get("skipped") else record["state"]
            print(f"trial {record['number']} ({self.done}/{self.total}): {state}{reward}; "
                  f"{self._best_text()}", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
