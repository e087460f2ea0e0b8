"""`nas export`: write the spec of any trial of a run (or its Pareto front) as YAML files."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..folders import check_output_folder, read_settings_file
from ..spec import save
from . import outputs
from .backend import backend_for
from .config import SearchConfig, apply, stored_values
from .run import CONFIG_FILE


def run_records(run_dir: str | Path) -> tuple[Path, list[dict]]:
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise UserError(f"run: got {str(run_dir)!r}; allowed: a run directory made by nas search (with {CONFIG_FILE})")
    stored = read_settings_file(run_dir / CONFIG_FILE, "run", "a run directory made by nas search")
    config = apply(SearchConfig(), stored_values(stored))
    return run_dir, backend_for(config.backend).records(run_dir, config)


def export(run_dir: str | Path, out_dir: str | Path, trial: int | None = None, pareto: bool = False) -> list[Path]:
    """Best trial by default; ``trial=N`` for one trial; ``pareto=True`` for the whole front."""
    check_output_folder("-o", out_dir, "a folder (existing or new) to write the YAML specs into")
    run_dir, records = run_records(run_dir)
    if pareto:
        chosen = outputs.pareto_front(records)
    elif trial is not None:
        chosen = [r for r in records if r["number"] == trial]
        if not chosen:
            raise UserError(f"--trial: got {trial}; allowed: a trial number of {run_dir} (0..{len(records) - 1})")
        if not chosen[0].get("spec_yaml"):
            raise UserError(f"--trial: trial {trial} ({chosen[0]['state']}) never produced an architecture")
    else:
        best = outputs.best_record(records)
        chosen = [best] if best else []
    if not chosen:
        raise UserError(f"run: {run_dir} has no completed trial to export yet")
    paths = []
    for r in chosen:
        path = Path(out_dir) / f"{run_dir.name}-trial{r['number']}.yaml"
        save(outputs.trial_spec(r, path.stem), path)
        paths.append(path)
    return paths
