"""The scaling grid's evaluator: the proxy model trained at the candidate's own resolution growth.

The proxy evaluators train every spec at the data set's resolution, whatever the spec says, so a grid
run naively would not see gamma at all. :class:`ScaledResolutionEvaluator` trains each candidate at the
proxy resolution times the candidate's resolution growth over the base instead (digits' 8 pixels x 1.15
-> 9 pixels, upsampled); the base's proxy resolution is ``resolution=`` or the data set's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from .search.evaluation import make_configured_evaluator
from .spec import Spec, Stage, resolve, spec_hash


def native_resolution(config) -> int:
    """The side of the configured data set's images (8 for digits)."""
    from .evaluate.data import load_dataset

    return load_dataset(config.dataset, seed=config.seed, data_dir=config.data_dir).resolution


def as_built(spec: Spec) -> Spec:
    """``spec`` with its multipliers applied: one stage per built block, the head's channels final, the
    multipliers 1. Specs that build the same network (coefficients whose rounding meets) share this form,
    and so its spec_hash."""
    resolved = resolve(spec)
    stem = tuple(rb.block for rb in resolved.blocks if rb.stage < 0)
    stages = tuple(Stage(rb.block, 1) for rb in resolved.blocks if rb.stage >= 0)
    head = replace(spec.head, channels=resolved.head_channels, scale_channels=False)
    return replace(spec, name="", notes="", stem=stem, stages=stages, head=head, width_multiplier=1.0,
                   depth_multiplier=1.0)


class ScaledResolutionEvaluator:
    """The configured evaluator, with each spec trained at the proxy resolution times the spec's resolution
    growth over the base: round(proxy * spec.resolution / base_resolution) pixels.

    The proxy resolution (the base's) is ``config.resolution``, or the data set's own when that is unset.
    One evaluator (one upsampled copy of the data) is kept per resolution met. Coefficients that round to
    the same architecture at the same proxy resolution (common on small bases: repeats round up, channels
    to multiples of 8) are evaluated once.
    """

    def __init__(self, config, base_resolution: int, seen_scores: list | None = None,
                 proxy_resolution: int | None = None):
        self.config, self.base_resolution, self.seen_scores = config, base_resolution, seen_scores
        self.proxy_resolution = proxy_resolution or config.resolution or native_resolution(config)
        self._evaluators: dict[int, Callable] = {}
        self._done: dict[str, object] = {}  # spec_hash of the built network at its proxy resolution -> Evaluation
        self._lock = threading.Lock()

    def resolution_for(self, spec: Spec) -> int:
        return max(1, round(self.proxy_resolution * spec.resolution / self.base_resolution))

    def __getstate__(self):  # sent to Ray workers: no lock, no loaded data (each worker loads its own)
        return {**self.__dict__, "_lock": None, "_evaluators": {}, "_done": {}}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def __call__(self, spec: Spec, report=None):
        side = self.resolution_for(spec)
        key = spec_hash(as_built(replace(spec, resolution=side)))
        with self._lock:
            if key in self._done:
                return replace(self._done[key], seconds=0.0)
            if side not in self._evaluators:
                self._evaluators[side] = make_configured_evaluator(replace(self.config, resolution=side),
                                                                   self.seen_scores)
        evaluation = self._evaluators[side](spec, report)
        with self._lock:
            self._done[key] = evaluation
        return evaluation
