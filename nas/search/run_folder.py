"""Which folders a search may write into, which settings a resumed run may not change, and which processes may
work on a run at once.

A run folder holds the settings it was made with (config.yaml). Resuming it with settings that change what
is maximised (the space, the reward, the data set, how a candidate is trained, ...) would mix trials scored
one way with trials scored another; that is refused in one line naming the differences. A scale grid's
folder (OUT/grid/, holding grid.yaml) and a folder that is not a nas run are refused, not extended.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..errors import UserError
from ..folders import read_settings_file
from ..io import held, kept_beside
from ..settings import SearchConfig, apply
from .config import stored_values
from .preflight import undeclared_resolution

CONFIG_FILE = "config.yaml"
GRID_FILE = "grid.yaml"   # nas.scale_run.GRID_FILE: a scale grid's folder

#: The settings that change a trial's reward: a resumed run must keep them.
OBJECTIVE_KEYS = ("space", "objective", "target_flops", "target", "w", "reward", "w_below", "w_above", "max_cost",
                  "dataset", "data_dir", "resolution", "train_images", "evaluator", "top_k", "epochs", "batch_size",
                  "optimizer", "lr", "momentum", "weight_decay", "label_smoothing", "schedule", "cycle_epochs",
                  "lr_min_ratio")
#: ... and, for a measured cost (objective=latency or energy), where and how it is measured.
MEASURED_COST_KEYS = ("latency", "latency_device", "latency_threads")
#: Not a key: the side the proxy trains at, stored beside the keys when the run is made. Without resolution= it
#: comes from the data set and the space's proxy_resolution, which a newer nas (or an edited space) may change.
TRAINED_SIDE = "proxy_resolution"
#: Held by every process working on the run (working_on); beside config.yaml.
RUN_LOCK = "run.lock"


@contextmanager
def working_on(run_dir: Path, backend: str, key: str = "out") -> Iterator[None]:
    """Held while this process works on the run in ``run_dir``: its trials, its final selection, its outputs.

    Processes with backend=optuna share a run (each claims trials from its study under a lock, and waits for the
    others' running trials before deciding), so they hold this lock together. A Ray driver holds it alone: its
    Tune session counts only its own trials, and it records a trial only once finished, so a second driver, or
    an Optuna process beside it, would run trials past trials= or pick finalists from part of the run. The
    kernel drops the lock when its holder dies: a killed process's run resumes at once. ``key``: the option that
    named the folder, for the message."""
    alone = backend == "ray"
    with ExitStack() as stack:
        try:
            stack.enter_context(held(Path(run_dir) / RUN_LOCK, wait=False, shared=not alone))
        except BlockingIOError:
            raise UserError(
                f"{key}: {run_dir} is being searched by another nas process"
                + (" (backend=ray runs alone on a run)" if alone else " with backend=ray, which runs alone on a run")
                + f"; allowed: wait for it to end, or another {key} (a Ray run gets more trials at once from its "
                "cluster's workers, an Optuna run from more processes with backend=optuna)") from None
        yield


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
        # config.yaml's lock and temp file: a run another process is making (nas.search.run.prepare_run)
        if out.is_dir() and any(not kept_beside(entry, CONFIG_FILE) for entry in out.iterdir()):
            raise UserError(f"out: got {where!r}, a non-empty folder that is not a nas run; allowed: a new folder "
                            "or a run directory")
        return None
    stored = read_settings_file(out / CONFIG_FILE, "out", "a new folder or a run directory made by nas search")
    if not {"space", "objective"} <= stored.keys():
        raise UserError(f"out: {where}/{CONFIG_FILE} is not the settings of a nas search; allowed: a new folder "
                        "or a run directory made by nas search")
    return stored


def inherited_settings(stored: dict, keys: tuple[str, ...]) -> dict:
    """The ``keys`` that a command working on a search run's result (nas train RUN, nas scale --base RUN) takes
    from its config.yaml. Without resolution= there, the side the search's proxy trained at (TRAINED_SIDE):
    the result is trained as it was scored."""
    inherited = {k: stored[k] for k in keys if stored.get(k) is not None}
    if "resolution" in keys and "resolution" not in inherited and stored.get(TRAINED_SIDE):
        inherited["resolution"] = stored[TRAINED_SIDE]
    return inherited


def trained_side(run_dir: Path, stored: dict, config: SearchConfig, side: int, any_scored: bool,
                 resolution_given: bool) -> int | None:
    """The side the run's trials trained at, to compare with ``side`` (what ``config`` trains at) on resume; None
    where the resolution key alone tells (a run with resolution= or no scored trial, made before sides were stored).

    A run made before nas stored its side trained at the data set's side or what its space needs to work
    (undeclared_resolution). Where the space now declares more (mnas's 16 px), that side is unknown and only the
    user can name it, with resolution=: refused without it rather than mixing trials scored at two sides."""
    if stored.get(TRAINED_SIDE) is not None or not any_scored or stored.get("resolution") is not None:
        return stored.get(TRAINED_SIDE)
    undeclared = undeclared_resolution(config)
    if side == undeclared or resolution_given:
        return side
    raise UserError(f"out: {run_dir} was made by an earlier nas that did not record the side its proxy trained at, "
                    f"and the space now trains at {side} px; allowed: resolution=N naming that side ({undeclared} "
                    "unless the space declared proxy_resolution then), or a new out=")


def as_settings(stored: dict) -> SearchConfig:
    """A stored config.yaml as settings (keys an older or newer nas wrote and this one does not know: skipped)."""
    return apply(SearchConfig(), stored_values(stored), "stored config: ")


def changed_settings(before: SearchConfig, after: SearchConfig,
                     sides: tuple[int | None, int] | None = None) -> list[str]:
    """'key: old -> new' for each setting that changes the reward and differs.

    ``sides``: the proxy side stored with the run (TRAINED_SIDE; None for a run made before it was stored) and
    the side these settings train at. When the run has one, the side itself is compared instead of the
    resolution key: resolution=16 resumes a run that trained at 16 px without it, and a space whose
    proxy_resolution changed under the same settings is caught."""
    keys = OBJECTIVE_KEYS + (MEASURED_COST_KEYS if before.objective in ("latency", "energy") else ())
    stored_side, new_side = sides or (None, None)
    if stored_side is not None:
        keys = tuple(k for k in keys if k != "resolution")
    old, new = before.to_dict(), after.to_dict()
    changes = [f"{k} {old[k]!r} -> {new[k]!r}" for k in keys if old.get(k) != new.get(k)]
    if stored_side is not None and stored_side != new_side:
        changes.append(f"proxy side {stored_side} px -> {new_side} px (resolution={stored_side} keeps it)")
    return changes


#: Kept even by a run with no scored trial: its queued trials hold decisions of this space, and the study's
#: directions follow the objective.
STUDY_SHAPE_KEYS = ("space", "objective")


def check_same_objective(run_dir: Path, before: SearchConfig, after: SearchConfig, any_scored: bool = True,
                         sides: tuple[int | None, int] | None = None) -> None:
    """One line naming the differences when a resume would change what the run maximises.

    A run with no scored trial (every one failed, typically for a mistake in the settings) has nothing the new
    settings could be mixed with: it may be resumed with corrected settings (the failed trials run again),
    except for the space and the objective."""
    changes = changed_settings(before, after, sides)
    if not any_scored:
        changes = [c for c in changes if c.split(" ", 1)[0] in STUDY_SHAPE_KEYS]
    if changes:
        raise UserError(f"out: {run_dir} is a run with other settings ({'; '.join(changes)}); allowed: the same "
                        "settings to resume it, or a new out=")
