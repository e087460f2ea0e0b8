"""`nas train SPEC|RUN_DIR [key=value ...]`: train one spec with the full recipe and write its folder.

The folder (``out=``) holds:
- ``spec.yaml``: the spec as trained (the data set's classes and resolution), which ``model.pt`` fits;
- ``recipe.yaml``: every key's value, so ``nas train FOLDER`` resumes it with nothing else typed;
- ``checkpoint.pt`` after every epoch; ``metrics.csv`` (one row per epoch) and ``curves.png``;
- ``model.pt`` and ``model_ema.pt``: state_dicts of the raw and the averaged weights, at the end.
A killed run resumes from its last finished epoch when given the same folder (``out=`` or the folder
itself as SPEC). Default folder: RUN_DIR/train for a search run, else runs/<spec>-train-<time>.
A family folder written by `nas scale` trains member by member (train_family.py).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .folders import check_output_folder, check_writable_files, read_settings_file
from .io import new_figure, remove_stale_temporaries, save_figure, write_text
from .search.run_folder import inherited_settings
from .settings import known_key, parse_pairs
from .settings.recipe import RECIPE_KEYS, TRAIN_RUN_KEYS, Recipe
from .spec import Spec, dumps, load

RUNS_DIR = Path("runs")
METRICS = ("epoch", "lr", "train_loss", "top1", "ema_top1", "seconds")

# `nas train`'s keys are TRAIN_RUN_KEYS (nas.settings.recipe): the Recipe's fields and where the data are.
DATA_KEYS = tuple(name for name in TRAIN_RUN_KEYS if name not in RECIPE_KEYS)  # where the data and the outputs are
WHERE_KEYS = ("device", "threads", "data_dir", "out")      # a run may resume with other values of these
INHERITED_KEYS = ("dataset", "data_dir", "resolution", "seed")  # from a search run's config.yaml


@dataclass
class TrainRunResult:
    out_dir: Path
    spec: Spec
    history: list[dict]
    resumed_from: int
    threads: int

    def report(self) -> str:
        last = self.history[-1]
        resumed = f", resumed after epoch {self.resumed_from}" if self.resumed_from else ""
        return (f"held-out top-1 after {last['epoch']} epochs{resumed}: {last['top1']:.4f} (raw), "
                f"{last['ema_top1']:.4f} (EMA)\nweights: {self.out_dir / 'model.pt'}, "
                f"{self.out_dir / 'model_ema.pt'} (spec: {self.out_dir / 'spec.yaml'})")


def parse_keys(pairs: list[str]) -> dict[str, Any]:
    """key=value strings -> the values they give, parsed; one line for the first mistake."""
    given = parse_pairs(pairs)
    for key in given:
        known_key(key, TRAIN_RUN_KEYS)
    return {key: TRAIN_RUN_KEYS[key].parse(key, value) for key, value in given.items()}


def _defaults() -> dict[str, Any]:
    return {name: key.default for name, key in TRAIN_RUN_KEYS.items()}


def _check_same_run(out_dir: Path, stored: dict, given: dict) -> None:
    """A folder resumes only under the settings that decide its result (not device, threads, paths)."""
    for key, value in given.items():
        if key not in WHERE_KEYS and key in stored and stored[key] != value:
            raise UserError(f"{key}: got {value!r}, but {out_dir} was trained with {key}={stored[key]!r}; "
                            f"allowed: the same value to resume it, or another out= folder")


def _is_train_folder(path: Path) -> bool:
    return path.is_dir() and (path / "recipe.yaml").exists() and (path / "spec.yaml").exists()


def _load_source(text: str) -> tuple[Spec, Path | None, dict]:
    """The spec to train, its default folder (a training folder itself, a search run's train/) and the
    data keys a search run's base inherits from that run (config.yaml), so it trains on what it was found on."""
    from .zoo import load_spec

    path = Path(text)
    if _is_train_folder(path):
        return load(path / "spec.yaml"), path, {}
    spec = load_spec(text)
    if not (path.is_dir() and (path / "best.yaml").exists()):
        return spec, None, {}
    config = path / "config.yaml"
    searched = read_settings_file(config, "run", "a run directory made by nas search") if config.exists() else {}
    return spec, path / "train", inherited_settings(searched, INHERITED_KEYS)


def write_metrics(path: Path, history: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRICS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in METRICS} for row in history)
    write_text(path, text.getvalue())


def plot_curves(path: Path, history: list[dict], title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    figure, (loss_axes, top1_axes) = new_figure(2, (9, 3.5))
    loss_axes.plot(epochs, [row["train_loss"] for row in history], marker=".")
    loss_axes.set(xlabel="epoch", ylabel="training loss (label-smoothed)")
    top1_axes.plot(epochs, [row["top1"] for row in history], marker=".", label="raw weights")
    top1_axes.plot(epochs, [row["ema_top1"] for row in history], marker=".", label="EMA of weights")
    top1_axes.set(xlabel="epoch", ylabel="held-out top-1")
    for axes in (loss_axes, top1_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    top1_axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)


def _save_state_dict(path: Path, model) -> None:
    import torch

    from .io import write_with

    # Plain contiguous CPU tensors: loads into build_model(spec) anywhere, with weights_only=True.
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_with(path, lambda fh: torch.save(state, fh), binary=True)


def run_train(source: str, pairs: list[str], progress: bool = True, say: Callable[[str], None] = print,
              runs_dir: Path = RUNS_DIR):
    """Train the spec named by ``source`` (zoo name, YAML, search run folder, or a training folder to
    resume) with the recipe in ``pairs`` and write the folder described above."""
    import torch

    from .evaluate.data import load_dataset
    from .evaluate.recipe import epoch_steps, train_with_recipe
    from .evaluate.train import proxy_spec

    given = parse_keys(pairs)  # a mistyped key fails before anything is loaded
    spec, folder, inherited = _load_source(source)
    out_dir = Path(given["out"]) if given.get("out") else folder
    out_dir = out_dir or runs_dir / f"{spec.name}-train-{time.strftime('%Y%m%d-%H%M%S')}"
    check_output_folder("out", out_dir, "a folder (new, or an earlier nas train out=)")
    check_writable_files("out", out_dir)
    if out_dir.is_dir():
        remove_stale_temporaries(out_dir)  # what a kill -9 mid-write (a checkpoint, a plot) left
    stored = {}
    if _is_train_folder(out_dir):
        stored = read_settings_file(out_dir / "recipe.yaml", "out", "a folder written by nas train")
        _check_same_run(out_dir, stored, given)
    values = {**_defaults(), **inherited, **{k: v for k, v in stored.items() if k in TRAIN_RUN_KEYS}, **given,
              "out": str(out_dir)}
    recipe = Recipe(**{k: v for k, v in values.items() if k in RECIPE_KEYS})

    data = load_dataset(values["dataset"], seed=recipe.seed, data_dir=values["data_dir"],
                        resolution=values["resolution"])
    epoch_steps(data, recipe)  # a batch larger than the data set fails here, before the folder is written
    trained = proxy_spec(spec, data)  # the data set's classes and resolution; every other field as given
    if _is_train_folder(out_dir) and load(out_dir / "spec.yaml") != trained:
        raise UserError(f"out: {out_dir} holds the training of another spec; allowed: that spec, or another out=")
    write_text(out_dir / "spec.yaml", dumps(trained))
    write_text(out_dir / "recipe.yaml", yaml.safe_dump(values, sort_keys=False))
    threads = recipe.threads or torch.get_num_threads()
    say(f"training {spec.name} on {data.name} ({len(data.train_x)} images, {data.resolution}x{data.resolution}, "
        f"{data.num_classes} classes) for {recipe.epochs} epochs, torch threads {threads} -> {out_dir}")

    def after_epoch(history: list[dict]) -> None:
        write_metrics(out_dir / "metrics.csv", history)

    result = train_with_recipe(trained, data, recipe, out_dir / "checkpoint.pt", progress, say, after_epoch)
    write_metrics(out_dir / "metrics.csv", result.history)
    plot_curves(out_dir / "curves.png", result.history, f"{spec.name} on {data.name}")
    _save_state_dict(out_dir / "model.pt", result.model)
    _save_state_dict(out_dir / "model_ema.pt", result.ema_model)
    return TrainRunResult(out_dir, trained, result.history, result.resumed_from, threads)


__all__ = ["TrainRunResult", "parse_keys", "run_train"]
