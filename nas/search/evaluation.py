"""The evaluator the settings name, built from them: what a search, a Ray worker and the scaling grid
each call to get ``(spec, report) -> Evaluation``. Torch is imported when it is called, not before."""

from __future__ import annotations

from collections.abc import Callable

from ..space import load_space, needed_resolution
from .config import SearchConfig


def make_configured_evaluator(config: SearchConfig, seen_scores: list[float] | None = None) -> Callable:
    """The evaluator the settings name (train, zero_cost:NAME, hybrid) on the configured data set.

    ``seen_scores``: the hybrid evaluator's proxy scores of earlier trials (a resumed run screens
    against them). Loads the data set: call it where the evaluation runs (a Ray worker builds its own).
    """
    from ..evaluate.evaluators import make_evaluator

    return make_evaluator(config.evaluator, configured_data(config), config.train_settings(), config.top_k,
                          seen_scores)


def configured_data(config: SearchConfig):
    """The configured data set, split by the search's seed, at ``resolution`` or else at max(the data set's
    side, the space's needed_resolution), its training split cut to ``train_images``."""
    from ..evaluate.data import load_dataset

    def load(resolution: int | None):
        return load_dataset(config.dataset, seed=config.seed, data_dir=config.data_dir, resolution=resolution,
                            max_train=config.train_images)

    data = load(config.resolution)
    if config.resolution is None:  # the data set's side, unless the space needs more (VoVNet's osa: 29 px)
        need = needed_resolution(load_space(config.space))
        if data.resolution < need:
            data = load(need)
    return data
