"""`nas search`: resolve the settings, open (or resume) the run directory, run the backend, write outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml

from ..errors import UserError
from ..evaluate.data import check_dataset_name
from ..io import write_text
from ..space import load_space, sample
from . import outputs
from .backend import backend_for
from .candidate import Context
from .config import SearchConfig, parse_pairs, resolve_config
from .evaluation import make_configured_evaluator

CONFIG_FILE = "config.yaml"


@dataclass
class SearchResult:
    run_dir: Path
    config: SearchConfig
    records: list[dict]
    best: dict | None
    resumed: bool
    final: list[dict] = field(default_factory=list)   # the final selection's trial records (nas.search.final)


def prepare_run(pairs: list[str]) -> tuple[SearchConfig, Path, bool]:
    """Settings and run directory. An existing run directory resumes: its stored settings, then the new key=value."""
    given = parse_pairs(pairs)
    out = given.get("out")
    stored = None
    if out and (Path(out) / CONFIG_FILE).exists():
        try:
            stored = yaml.safe_load((Path(out) / CONFIG_FILE).read_text())
        except yaml.YAMLError:
            raise UserError(f"out: {out}/{CONFIG_FILE} is not valid YAML; allowed: a run directory made by nas search") from None
    elif out and Path(out).exists() and any(Path(out).iterdir()):
        raise UserError(f"out: got {out!r}, a non-empty folder that is not a nas run; allowed: a new folder or a run directory")
    config, _ = resolve_config(pairs, stored)
    load_space(config.space)  # a bad space fails before anything is written
    check_dataset_name(config.dataset)
    if config.objective == "energy":
        from ..evaluate.energy import energy_available

        energy_available()  # one line, exit 2, instead of every trial failing
    run_dir = Path(config.out) if config.out else Path("runs") / f"{Path(config.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / CONFIG_FILE, yaml.safe_dump({**config.to_dict(), "out": str(run_dir)}, sort_keys=False))
    return config, run_dir, stored is not None


def build_context(config: SearchConfig, evaluator: Callable | None = None, seen_scores=None) -> Context:
    space = load_space(config.space)
    evaluator = evaluator or make_configured_evaluator(config, seen_scores)
    return Context(config, partial(sample, space), evaluator)


def run_search(pairs: list[str], evaluator: Callable | None = None, progress: bool = True,
               say: Callable[[str], None] = print) -> SearchResult:
    """Run (or resume) a search. ``evaluator(spec, report) -> Evaluation`` replaces the configured one."""
    config, run_dir, resumed = prepare_run(pairs)
    result = run_trials(config, run_dir, resumed, lambda seen: build_context(config, evaluator, seen), progress, say)
    if config.final_top_k > 0:  # then the best few again, longer, under several seeds (nas.search.final)
        from . import final

        final_records = final.run_final(config, run_dir, result.records, final.evaluator_factory(config, evaluator),
                                        say)
        result.final = final_records
        result.best = final.write_outputs(run_dir, config, result.records, final_records)
    return result


def run_trials(config: SearchConfig, run_dir: Path, resumed: bool, make_context: Callable[[list], Context],
               progress: bool = True, say: Callable[[str], None] = print) -> SearchResult:
    """The loop shared by `nas search` and the `nas scale` grid: resume, run the backend, write outputs."""
    backend = backend_for(config.backend)
    backend.recover_interrupted(run_dir, config)
    previous = backend.records(run_dir, config)
    done_before = sum(r["state"] in ("complete", "pruned", "failed") for r in previous)
    if resumed:
        say(f"resuming {run_dir}: {done_before} of {config.trials} trials finished")
    ctx = make_context([r["proxy_score"] for r in previous if r.get("proxy_score") is not None])
    remember_earlier_trials(ctx, previous)
    bar = ProgressBar(config.trials, done_before, previous, enabled=progress)
    try:
        backend.search(ctx, run_dir, bar.update_with)
    finally:
        bar.close()
        records = backend.records(run_dir, config)
        best = outputs.write_all(run_dir, records, config)
    return SearchResult(run_dir, config, records, best, resumed)


def remember_earlier_trials(ctx: Context, previous: list[dict]) -> None:
    """An architecture evaluated (or timed) before a restart is not trained (or timed) again."""
    for r in previous:
        if r["state"] == "complete" and r.get("spec_hash") and r.get("accuracy") is not None:
            ctx.evaluated.setdefault(r["spec_hash"], {"accuracy": r["accuracy"], "seconds": r.get("seconds") or 0})
        if ctx.config.objective in ("latency", "energy") and r.get("spec_hash") and r.get("cost") is not None:
            ctx.measured.setdefault(ctx.measured_key(r["spec_hash"]), r["cost"])


class ProgressBar:
    """A tqdm bar of finished trials with the best reward so far."""

    def __init__(self, total: int, done: int, previous: list[dict], enabled: bool):
        from tqdm.auto import tqdm

        best = outputs.best_record(previous)
        self.best = best["reward"] if best else None
        self.bar = tqdm(total=total, initial=min(done, total), desc="trials", unit="trial", disable=not enabled,
                        dynamic_ncols=True)
        self._postfix()

    def _postfix(self):
        self.bar.set_postfix_str("best reward " + (f"{self.best:.4f}" if self.best is not None else "-"))

    def update_with(self, record: dict) -> None:
        if record["state"] == "complete" and record.get("reward") is not None:
            self.best = record["reward"] if self.best is None else max(self.best, record["reward"])
        self.bar.update(1)
        self._postfix()

    def close(self):
        self.bar.close()
