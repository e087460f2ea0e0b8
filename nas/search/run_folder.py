"""Which folders a search may write into, and which settings a resumed run may not change.

A run folder holds the settings it was made with (config.yaml). Resuming it with settings that change what
is maximised (the space, the reward, the data set, how a candidate is trained, ...) would mix trials scored
one way with trials scored another; that is refused in one line naming the differences. A scale grid's
folder (OUT/grid/, holding grid.yaml) and a folder that is not a nas run are refused, not extended.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..folders import read_settings_file
from ..settings import SearchConfig, apply
from .config import stored_values

CONFIG_FILE = "config.yaml"
GRID_FILE = "grid.yaml"   # nas.scale_run.GRID_FILE: a scale grid's folder

#: The settings that change a trial's reward: a resumed run must keep them.
OBJECTIVE_KEYS = ("space", "objective", "target_flops", "target", "w", "reward", "w_below", "w_above", "max_cost",
                  "dataset", "data_dir", "resolution", "evaluator", "top_k", "epochs", "batch_size", "optimizer",
                  "lr", "momentum", "weight_decay", "label_smoothing", "schedule", "cycle_epochs", "lr_min_ratio")
#: ... and, for a measured cost (objective=latency or energy), where and how it is measured.
MEASURED_COST_KEYS = ("latency", "latency_device", "latency_threads")


def stored_settings(out: Path) -> dict | None:
    """The settings of the search run in ``out``; None for a new or empty folder. Refuses a file, a scale grid's
    folder and a folder that holds something other than a search run."""
    where = str(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"out: got {where!r}, a file; allowed: a new folder or a run directory")
    if (out / GRID_FILE).exists():
        raise UserError(f"out: got {where!r}, the grid of a nas scale run; allowed: a new folder or a search run "
                        "directory (resume the grid with nas scale --out)")
    if not (out / CONFIG_FILE).exists():
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"out: got {where!r}, a non-empty folder that is not a nas run; allowed: a new folder "
                            "or a run directory")
        return None
    stored = read_settings_file(out / CONFIG_FILE, "out", "a new folder or a run directory made by nas search")
    if not {"space", "objective"} <= stored.keys():
        raise UserError(f"out: {where}/{CONFIG_FILE} is not the settings of a nas search; allowed: a new folder "
                        "or a run directory made by nas search")
    return stored


def as_settings(stored: dict) -> SearchConfig:
    """A stored config.yaml as settings (keys an older or newer nas wrote and this one does not know: skipped)."""
    return apply(SearchConfig(), stored_values(stored), "stored config: ")


def changed_settings(before: SearchConfig, after: SearchConfig) -> list[str]:
    """'key: old -> new' for each setting that changes the reward and differs."""
    keys = OBJECTIVE_KEYS + (MEASURED_COST_KEYS if before.objective in ("latency", "energy") else ())
    old, new = before.to_dict(), after.to_dict()
    return [f"{k} {old[k]!r} -> {new[k]!r}" for k in keys if old.get(k) != new.get(k)]


#: Kept even by a run with no scored trial: its queued trials hold decisions of this space, and the study's
#: directions follow the objective.
STUDY_SHAPE_KEYS = ("space", "objective")


def check_same_objective(run_dir: Path, before: SearchConfig, after: SearchConfig, any_scored: bool = True) -> None:
    """One line naming the differences when a resume would change what the run maximises.

    A run with no scored trial (every one failed, typically for a mistake in the settings) has nothing the new
    settings could be mixed with: it may be resumed with corrected settings (the failed trials run again),
    except for the space and the objective."""
    changes = changed_settings(before, after)
    if not any_scored:
        changes = [c for c in changes if c.split(" ", 1)[0] in STUDY_SHAPE_KEYS]
    if changes:
        raise UserError(f"out: {run_dir} is a run with other settings ({'; '.join(changes)}); allowed: the same "
                        "settings to resume it, or a new out=")
