"""`nas scale`: grow a base spec into a compound-scaled family (EfficientNet, Tan & Le 2019).

Three ways to get alpha (depth), beta (width) and gamma (resolution):

- the grid (default): every (alpha, beta, gamma) >= 1 on a grid with alpha*beta^2*gamma^2 within a
  tolerance of 2 is a candidate; each candidate's phi = 1 model is evaluated by the search's evaluator
  and the most accurate wins. The candidates are trials of the search backend (Optuna's GridSampler
  visits each once), so the grid lives in ``OUT/grid/`` like a search run and a killed grid resumes;
- given coefficients (``--alpha --beta --gamma``): no grid;
- ``--preset efficientnet``: the official B1-B7 table instead of a formula.

Then every phi asked for is scaled, costed and written to OUT: ``<base>-phi<k>.yaml`` (the preset
names them ``<family>-b<k>``), family.csv, family.png, and for the grid grid.csv and grid.png.
``--compare single`` adds width-only, depth-only and resolution-only members at each member's FLOPs
(nas.scale.matched; the `scaling` column of family.csv). ``--train [key=value ...]`` then trains every
member with `nas train`'s recipe (nas.train_family): family_accuracy.csv and family_accuracy.png.

The grid trains each candidate at the proxy resolution times its own resolution growth, so that it
sees gamma at all (:mod:`nas.scaled_resolution`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from . import scale
from .cost import Cost, count_cost
from .errors import UserError, did_you_mean
from .folders import check_output_folder, check_writable_files, read_settings_file
from .io import remove_stale_temporaries, updating, write_text
from .scale.matched import single_dimension_rows
from .scaled_resolution import ScaledResolutionEvaluator
from .search.run_folder import inherited_settings
from .settings import GRID_KEYS, TRAIN_KEYS, GridSettings, parse_grid, parse_pairs
from .spec import Spec, load, save, spec_hash
from .train_family import check_family_recipe, train_family
from .units import human
from .zoo import load_spec, zoo_names

#: The grid's defaults (why these: nas.settings.GridSettings, where the grid keys are declared).
DEFAULT_STEP = GridSettings.step
DEFAULT_TOLERANCE = GridSettings.tolerance
DEFAULT_MAX_CANDIDATES = GridSettings.max_candidates
TARGET_PRODUCT = 2.0
DRIFT_LIMIT = 0.10
PRESETS = ("efficientnet",)
COMPARISONS = ("single",)

GRID_DIR = "grid"            # OUT/grid/: the grid's search run (config.yaml, study.journal, trials.csv, ...)
GRID_FILE = "grid.yaml"      # OUT/grid/grid.yaml: the base and the candidates, so a resume runs the same grid
BASE_FILE = "base.yaml"      # OUT/grid/base.yaml: the base spec the grid scaled
CONFIG_FILE = "config.yaml"  # the search's settings file, in a search run and in OUT/grid/
RUNS_DIR = Path("runs")

#: The settings that make an evaluation what it is; a base taken from a search run inherits them from
#: the run's config.yaml, so the grid's candidates are measured the way the search measured the base.
EVALUATION_KEYS = ("evaluator", "dataset", "data_dir", "resolution", "train_images", "seed", "top_k") + TRAIN_KEYS
#: How the grid runs (not inherited: a machine's business).
EXECUTION_KEYS = ("pruner", "workers", "backend", "ray_address", "cpus_per_trial", "gpus_per_trial", "concurrent")
#: The grid's own defaults for search settings: every candidate trains to the end, so all accuracies compare.
GRID_SETTINGS = {"pruner": "none"}


@dataclass(frozen=True)
class ScaleRequest:
    """What `nas scale` is asked to do: the command line's arguments.

    ``phi``: "1..7", "1,3,5" or "4". ``base``: a zoo name, a YAML spec or a run directory (None: the newest
    run with a best.yaml). ``alpha``/``beta``/``gamma`` (all three, numbers or their text) or ``preset``
    skip the grid. ``out``: the family's folder (None: runs/<base>-scale-<time>). ``pairs``: key=value
    settings of the grid (step, tolerance, max_candidates) and of its evaluation (epochs, dataset, ...).
    """

    phi: str | int
    base: str | None = None
    alpha: float | str | None = None
    beta: float | str | None = None
    gamma: float | str | None = None
    preset: str | None = None
    out: str | None = None
    pairs: tuple[str, ...] = ()
    compare: str | None = None            # "single": also width-, depth- and resolution-only members
    train: tuple[str, ...] | None = None  # the recipe's key=value; None: the family is not trained


@dataclass
class ScaleResult:
    """What `nas scale` did; :meth:`report` is what the command prints."""

    out_dir: Path
    base: Spec
    base_source: str
    base_cost: Cost
    method: str                                    # "grid", "given" or "preset"
    coefficients: tuple[float, float, float] | None  # None for the preset
    rows: list[scale.FamilyRow]
    grid: list[dict] = field(default_factory=list)  # one dict per candidate (see grid_results)
    winner: dict | None = None
    grid_note: str = ""                             # how the grid evaluated its candidates
    grid_seconds: float = 0.0
    resumed: bool = False
    warnings: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    trained: Any = None                             # a train_family.FamilyTrainResult after --train

    def report(self) -> str:
        b = self.base_cost
        lines = [f"base: {self.base.name} ({self.base_source}): {b.params:,} params, {human(b.flops)} FLOPs "
                 f"(multiply-adds), resolution {self.base.resolution}"]
        if self.method == "grid":
            done = sum(r["state"] == "complete" for r in self.grid)
            lines.append(f"grid: {len(self.grid)} candidates with alpha*beta^2*gamma^2 ~ {TARGET_PRODUCT:g}, "
                         f"{done} evaluated at phi = 1 by {self.grid_note}; {self.grid_seconds:.0f} s this time "
                         f"-> {self.out_dir / 'grid.csv'}")
            w = self.winner
            lines.append(f"most accurate: alpha={w['alpha']:g} beta={w['beta']:g} gamma={w['gamma']:g}, accuracy "
                         f"{w['accuracy']:.4f}, FLOPs x{w['flops_ratio']:.2f} the base")
        if self.coefficients:
            a, b_, g = self.coefficients
            lines.append(f"coefficients ({self.method}): alpha={a:g} beta={b_:g} gamma={g:g}, "
                         f"alpha*beta^2*gamma^2 = {scale.constraint_product(a, b_, g):.3f}")
        else:
            lines.append("coefficients: the efficientnet preset (EfficientNet-B1..B7's published width, depth, "
                         "resolution and dropout)")
        lines += ["", scale.format_family_table(self.rows), "",
                  "ideal = the FLOPs growth the coefficients promise (for a single-dimension member: its compound "
                  "member's); drift = FLOPs/base against it, from rounding.",
                  f"wrote {len(self.written)} files to {self.out_dir}"]
        if self.trained is not None:
            lines += ["", "trained with nas train's recipe:", self.trained.report()]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------------------------

def run_scale(request: ScaleRequest, evaluator: Callable | None = None, progress: bool = True,
              say: Callable[[str], None] = print, runs_dir: Path = RUNS_DIR) -> ScaleResult:
    """`nas scale`: find or take the coefficients, scale the base for every phi, write the family.

    ``evaluator(spec, report) -> Evaluation`` replaces the configured one (tests); ``runs_dir`` is where
    runs are looked for and written when no base or out is given.
    """
    phi, alpha, beta, gamma = request.phi, request.alpha, request.beta, request.gamma
    phis = scale.parse_phi(phi)
    grid_settings, search_pairs = split_pairs(request.pairs)
    method = _method(alpha, beta, gamma, request.preset)
    if method != "grid" and (grid_settings or search_pairs):
        given = ", ".join(list(grid_settings) + [p.split("=", 1)[0] for p in search_pairs])
        raise UserError(f"{given}: settings of the grid, which {method} coefficients skip; "
                        "allowed: no key=value with --alpha/--beta/--gamma or --preset")
    out_dir = _out_dir(request.out)
    stored_grid = _stored_grid(out_dir) if out_dir else None
    base_spec, base_source, inherited = _load_base(request.base, stored_grid, out_dir, runs_dir)
    out_dir = out_dir or runs_dir / f"{base_spec.name}-scale-{time.strftime('%Y%m%d-%H%M%S')}"
    if request.compare not in (None, *COMPARISONS):
        raise UserError(f"--compare: got {request.compare!r}; allowed: " + ", ".join(COMPARISONS))
    if request.train is not None:
        check_family_recipe(list(request.train))  # a mistyped recipe key fails before the grid runs
    if method == "preset" and max(phis) > max(scale.EFFICIENTNET_PRESET):
        raise UserError(f"phi: got {phi!r}; allowed with --preset efficientnet: 1 to {max(scale.EFFICIENTNET_PRESET)}")

    result = ScaleResult(out_dir, base_spec, base_source, count_cost(base_spec), method, None, [])
    if method == "grid":
        try:
            run_grid(result, grid_settings, search_pairs, inherited, stored_grid, evaluator, progress, say)
        except GridMadeMeanwhile:  # join it as a resume: its base and settings are checked like any resume's
            return run_scale(replace(request, out=str(out_dir)), evaluator, progress, say, runs_dir)
        result.coefficients = (result.winner["alpha"], result.winner["beta"], result.winner["gamma"])
    elif method == "given":
        result.coefficients = scale.check_coefficients(alpha, beta, gamma)

    if result.coefficients:
        result.rows = scale.family(base_spec, *result.coefficients, phis)
    else:
        result.rows = scale.preset_family(base_spec, phis)
    result.warnings = [scale.drift_message(row) for row in scale.drift_warnings(result.rows, DRIFT_LIMIT)]
    if request.compare == "single":
        result.rows += single_dimension_rows(base_spec, result.rows)
    result.written += scale.write_family(result.rows, out_dir, base_spec.name)
    if request.compare or request.train is not None:  # the training resolutions are relative to the base's
        save(base_spec, out_dir / BASE_FILE)
        result.written.append(out_dir / BASE_FILE)
    if request.train is not None:
        result.trained = train_family(out_dir, list(request.train), progress, say)
    return result


def _method(alpha, beta, gamma, preset) -> str:
    given = [v is not None for v in (alpha, beta, gamma)]
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"--preset: got {preset!r}; allowed: " + ", ".join(PRESETS))
        if any(given):
            raise UserError("--preset: got it with --alpha/--beta/--gamma; allowed: one or the other")
        return "preset"
    if all(given):
        scale.check_coefficients(alpha, beta, gamma)
        return "given"
    if any(given):
        missing = [n for n, g in zip(("--alpha", "--beta", "--gamma"), given) if not g]
        raise UserError(f"{', '.join(missing)}: missing; allowed: all three of --alpha, --beta, --gamma, or none "
                        "(then a grid search finds them)")
    return "grid"


def split_pairs(pairs) -> tuple[dict, list[str]]:
    """key=value pairs -> (grid settings parsed, the search settings left as key=value). Unknown keys fail."""
    grid, search = {}, []
    allowed = (*GRID_KEYS, *EVALUATION_KEYS, *EXECUTION_KEYS)
    for key, value in parse_pairs(list(pairs)).items():
        if key not in allowed:
            raise UserError(f"unknown key {key!r} for nas scale{did_you_mean(key, allowed)}; allowed: "
                            + ", ".join(allowed))
        if key in GRID_KEYS:
            grid[key] = value
        else:
            search.append(f"{key}={value}")
    return parse_grid(grid), search


# --------------------------------------------------------------------------------------------
# The base and the out directory
# --------------------------------------------------------------------------------------------

def latest_run(runs_dir: Path = RUNS_DIR) -> Path:
    """The run directory under ``runs_dir`` whose best.yaml was written last."""
    bests = sorted(runs_dir.glob("*/best.yaml"), key=lambda p: p.stat().st_mtime) if runs_dir.is_dir() else []
    if not bests:
        raise UserError(f"--base: not given, and no run under {runs_dir}/ has a best.yaml; allowed: a zoo name "
                        "(efficientnet-b0), a YAML spec, or a run directory (run nas search first)")
    return bests[-1].parent


def _load_base(text: str | None, stored_grid: dict | None, out_dir: Path, runs_dir: Path
               ) -> tuple[Spec, str, dict]:
    """The base spec, where it came from, and the evaluation settings of the search run it came from."""
    if text is None and stored_grid is not None:  # a resumed grid keeps its base
        spec = load(out_dir / GRID_DIR / BASE_FILE)
        return spec, stored_grid["base_source"], {}
    if text is None:
        text = str(latest_run(runs_dir))
    path = Path(text)
    if text not in zoo_names() and not path.exists():
        raise UserError(f"--base: got {text!r}, which does not exist; allowed: a zoo name (efficientnet-b0), a YAML "
                        "spec or a run directory with best.yaml")
    if path.is_dir() and not (path / "best.yaml").exists():
        raise UserError(f"--base: {text} has no best.yaml (no trial completed yet?); allowed: a zoo name, a YAML "
                        "spec or a run directory with best.yaml")
    spec = load_spec(text)
    if stored_grid is not None and spec_hash(spec) != stored_grid["base_hash"]:
        raise UserError(f"--base: got {text!r}, but {out_dir} holds a grid of another base "
                        f"({stored_grid['base_source']}); allowed: the same base, or a new --out")
    run_dir = path if path.is_dir() else path.parent
    inherited = {}
    if path.exists() and (run_dir / CONFIG_FILE).exists() and (run_dir / "best.yaml").exists():
        stored = read_settings_file(run_dir / CONFIG_FILE, "--base", "a run directory made by nas search")
        inherited = inherited_settings(stored, EVALUATION_KEYS)
    return spec, text, inherited


def _out_dir(out: str | None) -> Path | None:
    """The --out folder, checked; None when not given (then runs/<base>-scale-<time>)."""
    if out is None:
        return None
    path = check_output_folder("--out", out, "a folder (new, or one nas scale wrote before)")
    check_writable_files("--out", path)
    check_writable_files("--out", path / GRID_DIR)
    if path.is_dir() and any(path.iterdir()) and not ((path / "family.csv").exists() or (path / GRID_DIR).is_dir()):
        raise UserError(f"--out: got {out!r}, a non-empty folder that nas scale did not write; allowed: a new folder "
                        "or an earlier nas scale --out")
    return path


def _stored_grid(out_dir: Path) -> dict | None:
    path = out_dir / GRID_DIR / GRID_FILE
    if not path.exists():
        return None
    return read_settings_file(path, "--out", "a folder written by nas scale") or None


# --------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------

def coefficient_label(alpha: float, beta: float, gamma: float) -> str:
    """The grid decision's value: '1.2/1.1/1.15' (a string, so every backend stores it as it is)."""
    return f"{alpha:g}/{beta:g}/{gamma:g}"


def grid_config(search_pairs: list[str], stored: dict | None, trials: int, base: Spec, grid_dir: Path):
    """The search settings of the grid: the defaults < the base run's evaluation settings (or the stored
    grid's, on a resume) < key=value; then what the grid fixes: one trial per candidate, accuracy alone."""
    from .data import check_name
    from .search.config import resolve_config

    config, _ = resolve_config(search_pairs, stored)
    check_name(config.dataset)
    return replace(config, space=f"compound-scaling grid of {base.name}", reward="accuracy", objective="flops",
                   trials=trials, out=str(grid_dir))


class GridMadeMeanwhile(Exception):
    """Another process made the grid in --out after this one found none there."""


def run_grid(result: ScaleResult, settings: dict, search_pairs: list[str], inherited: dict, stored_grid: dict | None,
             evaluator: Callable | None, progress: bool, say: Callable[[str], None]) -> None:
    """Evaluate the grid's candidates at phi = 1 (resuming OUT/grid/), write grid.csv/png, pick the winner."""
    from .search.candidate import Context
    from .search.run import run_trials
    from .search.run_folder import working_on

    grid_dir = result.out_dir / GRID_DIR
    base = result.base
    settings = {**(stored_grid or {}).get("settings", {}), **settings}
    step = settings.get("step", DEFAULT_STEP)
    tolerance = settings.get("tolerance", DEFAULT_TOLERANCE)
    max_candidates = settings.get("max_candidates", DEFAULT_MAX_CANDIDATES)
    candidates = scale.grid_candidates(step, TARGET_PRODUCT, tolerance, max_candidates=max_candidates)
    labels = {coefficient_label(*c): c for c in candidates}
    if stored_grid is not None and list(labels) != stored_grid["candidates"]:
        raise UserError(f"step/tolerance/max_candidates: give candidates other than the grid stored in {grid_dir}; "
                        "allowed: the same settings (or none) to resume it, or a new --out")

    stored_config = None
    if (grid_dir / CONFIG_FILE).exists():
        stored_config = read_settings_file(grid_dir / CONFIG_FILE, "--out", "a folder written by nas scale")
    config = grid_config(search_pairs, stored_config or {**GRID_SETTINGS, **inherited}, len(candidates), base,
                         grid_dir)
    if stored_config:  # a resumed grid keeps how its candidates are evaluated
        from .search.run_folder import as_settings, check_same_objective

        check_same_objective(grid_dir, as_settings(stored_config), config)
    grid_dir.mkdir(parents=True, exist_ok=True)
    # Two nas scale started on one new --out both find no grid: under the lock only one makes it, and the other
    # then joins it (GridMadeMeanwhile) instead of replacing grid.yaml and base.yaml under the first's trials.
    with updating(grid_dir / GRID_FILE):
        if stored_grid is None and (grid_dir / GRID_FILE).exists():
            raise GridMadeMeanwhile
        remove_stale_temporaries(grid_dir)  # what a kill -9 mid-write of an earlier run left
        remove_stale_temporaries(grid_dir.parent, recursive=False)
        if stored_grid is None:
            save(base, grid_dir / BASE_FILE)
            write_text(grid_dir / GRID_FILE, yaml.safe_dump(
                {"base_source": result.base_source, "base_hash": spec_hash(base),
                 "settings": {"step": step, "tolerance": tolerance, "max_candidates": max_candidates},
                 "candidates": list(labels)}, sort_keys=False))
        write_text(grid_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))

    def propose(choose) -> Spec:
        return scale.scale_spec(base, *labels[choose("coefficients", list(labels))], 1)

    def make_context(seen_scores) -> Context:
        chosen = evaluator or ScaledResolutionEvaluator(config, base.resolution, seen_scores)
        return Context(config, propose, chosen, grid={"coefficients": list(labels)})

    say(f"grid: {len(labels)} candidates (of {len(scale.grid_candidates(step, TARGET_PRODUCT, tolerance))} with "
        f"|alpha*beta^2*gamma^2 - {TARGET_PRODUCT:g}| <= {tolerance:g}, step {step:g}), each evaluated at phi = 1 "
        f"-> {grid_dir}")
    start = time.perf_counter()
    with working_on(grid_dir, config.backend, key="--out"):
        search = run_trials(config, grid_dir, stored_grid is not None, make_context, progress, say)
    result.grid_seconds = time.perf_counter() - start
    result.resumed = search.resumed
    result.grid = grid_results(search.records, labels, result.base_cost.flops)
    result.grid_note = "a given evaluator" if evaluator else describe_evaluation(config)
    result.written += scale.write_grid(result.grid, result.out_dir)
    result.winner = scale.best_result(result.grid)
    if result.winner is None:
        raise UserError(f"grid: none of the {len(labels)} candidates completed, so there are no coefficients; "
                        f"see the notes in {grid_dir / 'trials.csv'}")


def describe_evaluation(config) -> str:
    """'train on digits, 4 epochs, seed 0'."""
    epochs = "" if config.evaluator.startswith("zero_cost") else f", {config.train.epochs} epochs"
    return f"{config.evaluator} on {config.dataset}{epochs}, seed {config.seed}"


def grid_results(records: list[dict], labels: dict, base_flops: int) -> list[dict]:
    """One dict per candidate, in the grid's order: alpha, beta, gamma, flops, flops_ratio, accuracy, state,
    seconds, trial. A candidate run twice (a kill's interrupted try, then the retry) keeps its finished try."""
    rank = {"complete": 0, "pruned": 1, "failed": 2}
    chosen: dict[str, dict] = {}
    for r in records:
        label = r.get("decisions", {}).get("coefficients")
        if label not in labels or r["state"] not in rank:
            continue  # interrupted, running or waiting: not a result
        if label not in chosen or rank[r["state"]] < rank[chosen[label]["state"]]:
            chosen[label] = r
    results = []
    for label, (alpha, beta, gamma) in labels.items():
        r = chosen.get(label)
        if r is None:
            results.append({"alpha": alpha, "beta": beta, "gamma": gamma, "flops": None, "flops_ratio": None,
                            "accuracy": None, "state": "not run", "seconds": None, "trial": None})
            continue
        flops = r.get("flops")
        results.append({"alpha": alpha, "beta": beta, "gamma": gamma, "flops": flops,
                        "flops_ratio": round(flops / base_flops, 4) if flops else None,
                        "accuracy": r.get("accuracy") if r["state"] == "complete" else None,
                        "state": r["state"], "seconds": r.get("seconds"), "trial": r["number"]})
    return results
