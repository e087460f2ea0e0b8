"""What a search backend is, and the one table that names them.

A backend adapts a trial engine (Optuna, Ray Tune) to :func:`nas.search.candidate.run_candidate`: it
proposes decisions, reports per-epoch accuracy to its pruner or scheduler, and stores what each trial
measured as backend-neutral records (see :mod:`nas.search.outputs` for the keys). Everything above it
(resume, outputs, export, the scaling grid) talks to this interface only.

To add a backend: a module with the three functions of :class:`Backend`, one line in ``BACKENDS``,
and its name among the choices of ``backend=`` in the settings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import UserError, did_you_mean
from .candidate import Context
from .config import SearchConfig


class Backend(Protocol):
    def search(self, ctx: Context, run_dir: Path, on_trial: Callable[[dict], None]) -> None:
        """Run trials until ``ctx.config.trials`` have finished in the run (a grid: until every point of
        ``ctx.grid`` ran once), counting those of earlier sessions; ``on_trial`` gets each finished record."""

    def records(self, run_dir: Path, config: SearchConfig) -> list[dict]:
        """Every trial of the run so far, in trial-number order, as backend-neutral records. Read-only:
        readable while another process searches, and without the backend's engine running."""

    def recover_interrupted(self, run_dir: Path, config: SearchConfig) -> int:
        """Before a resume: set aside the trials a killed process left unfinished (so they are neither
        counted as finished nor built upon) and make their candidates run again; returns how many."""


#: backend= name -> the module that implements it, imported when first used (Ray only when asked for).
BACKENDS = {
    "optuna": "nas.search.optuna_backend",
    "ray": "nas.search.ray_backend",
}


def backend_for(name: str) -> Backend:
    if name not in BACKENDS:
        raise UserError(f"backend: got {name!r}{did_you_mean(name, BACKENDS)}; allowed: " + ", ".join(BACKENDS))
    return importlib.import_module(BACKENDS[name])
