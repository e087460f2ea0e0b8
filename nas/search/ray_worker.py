"""The Ray backend's worker side: what a Tune trial runs, and what it needs to run it.

Each trial runs :func:`run_candidate` in a Ray worker. The worker replays the decisions from its Tune
config and rebuilds the search's Context there from a picklable :class:`Job` (settings, ``propose``,
and the evaluator, or None to build the configured one on the worker, which then loads its own data).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ray import cloudpickle, tune

from ..errors import Rejected
from ..space import fixed_choices
from ..spec import spec_hash
from .candidate import Context, run_candidate
from .config import SearchConfig

GRID_KEY = "grid_point"          # a grid trial's Tune config: {GRID_KEY: {decision: value}}
KNOWN_KEY = "nas_known"          # set by the searcher when the architecture was evaluated before
BEST_KEY = "nas_best"            # set by the searcher: the best reward of a complete trial so far


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
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # one per search session


def job_for(ctx: Context, previous: list[dict]) -> Job:
    """The Job of a search; says in one error when something the workers need can't be pickled."""
    from ..evaluate.evaluators import HybridEvaluator, TrainEvaluator, ZeroCostEvaluator

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


# The Context of the job this worker process ran last. Tune reuses a worker for the trials of one job
# (reuse_actors), so the evaluator and its loaded data set are built once per worker, not per trial.
_worker_context: dict[str, Context] = {}


def context_for(job: Job) -> Context:
    if job.job_id not in _worker_context:
        evaluator = job.evaluator
        if evaluator is None:
            from .evaluation import make_configured_evaluator

            config = job.config
            if config.train.device == "auto" and config.gpus_per_trial == 0:  # a GPU it did not reserve is another's
                config = replace(config, train=replace(config.train, device="cpu"))
            evaluator = make_configured_evaluator(config, list(job.seen_scores))
        _worker_context.clear()
        _worker_context[job.job_id] = Context(job.config, job.propose, evaluator, evaluated=dict(job.evaluated))
    return _worker_context[job.job_id]


class TuneTrialIO:
    """run_candidate's TrialIO inside a Tune trial: decisions come from the Tune config, each epoch's
    accuracy and reward go to tune.report (where ASHA may stop the trial on the reward), attributes ride along
    in every report under "nas" (with a "state": started, running, then complete, pruned or failed)."""

    def __init__(self, values: dict, epochs: int, where: dict | None = None, best: float | None = None):
        self.values, self.epochs, self.best = values, epochs, best
        self.attrs: dict[str, Any] = {"decisions": {}, "curve": [], **(where or {})}

    def choose(self, name: str, options: list):
        value = self.values[name]
        self.attrs["decisions"][name] = value
        return value

    def report(self, epoch: int, accuracy: float, reward: float) -> None:
        self.attrs["curve"].append(round(accuracy, 6))
        if epoch + 1 >= self.epochs:
            return  # the final report carries the last epoch: ASHA stops a trial that reaches max_t
        tune.report({"epoch": epoch + 1, "accuracy": accuracy, "reward": reward, "cost": self.attrs.get("cost"),
                     "nas": self._snapshot("running")})

    def best_reward(self) -> float | None:
        """The best reward so far when the searcher proposed this trial (trials running beside it may beat it)."""
        return self.best

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


def where_am_i() -> dict:
    """The Ray node and the process a trial runs in, for its record."""
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "worker": f"{socket.gethostname()}:{os.getpid()}"}


def run_trial(tune_config: dict, job: Job) -> None:
    """One Tune trial (runs in a worker). Errors in the candidate are recorded, not raised."""
    import torch

    torch.set_num_threads(max(1, int(job.config.cpus_per_trial)))
    ctx = context_for(job)
    values = tune_config.get(GRID_KEY, tune_config)
    io = TuneTrialIO(values, job.config.train.epochs, where_am_i(), tune_config.get(BEST_KEY))
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


def trainable(job: Job):
    """The Tune trainable of a job: run_trial with the job bound and the trial's resources reserved."""
    resources = {"cpu": job.config.cpus_per_trial, "gpu": job.config.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(run_trial, job=job), resources)
