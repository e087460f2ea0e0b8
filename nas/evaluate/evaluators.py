"""Evaluators the search can use, each a callable ``(spec, report) -> Evaluation``.

- ``train``: proxy training (nas.evaluate.train); ``report(epoch, accuracy)`` after each epoch allows pruning.
- ``zero_cost:NAME``: a zero-cost proxy score at initialisation on one fixed batch; the score stands in
  for accuracy in the reward and the records (only its ranking matters to the samplers).
- ``hybrid``: score every candidate by synflow, and train only those whose score is among the ``top_k``
  best seen so far; the others are rejected untrained (an online form of "rank many, train the top k").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import Rejected
from ..spec import Spec
from .data import Split
from .device_lock import training_on
from .train import TrainSettings, pick_device, proxy_spec, train_and_evaluate

Report = Callable[[int, float], None]


@dataclass
class Evaluation:
    """What an evaluator measured of one candidate.

    ``score`` is what the reward takes as the candidate's accuracy (higher is better): held-out top-1
    accuracy when the evaluator trains, the proxy's score for a zero-cost evaluator (not an accuracy: no
    range, only its ranking means anything). ``curve``: held-out accuracy after each epoch (empty when
    nothing was trained). ``proxy_score``: the zero-cost score of a zero-cost or hybrid evaluation.
    """

    score: float
    seconds: float
    curve: list[float] = field(default_factory=list)
    proxy_score: float | None = None


class TrainEvaluator:
    def __init__(self, data: Split, settings: TrainSettings):
        self.data, self.settings = data, settings

    def __call__(self, spec: Spec, report: Report | None = None) -> Evaluation:
        # Held shared while training: no latency is timed on this device meanwhile (nas.evaluate.device_lock).
        with training_on(pick_device(self.settings.device).type):
            result = train_and_evaluate(spec, self.data, self.settings, report)
        return Evaluation(score=result.accuracy, seconds=result.seconds, curve=result.curve)


class ZeroCostEvaluator:
    def __init__(self, proxy: str, data: Split, seed: int = 0, batch: int = 64):
        self.proxy, self.seed = proxy, seed
        self.batch_x, self.batch_y = data.train_x[:batch], data.train_y[:batch]
        self.data = data

    def __call__(self, spec: Spec, report: Report | None = None) -> Evaluation:
        from .zero_cost import score

        start = time.perf_counter()
        value = score(self.proxy, proxy_spec(spec, self.data), self.batch_x, self.batch_y, self.seed)
        return Evaluation(score=value, seconds=time.perf_counter() - start, proxy_score=value)


class HybridEvaluator:
    def __init__(self, data: Split, settings: TrainSettings, top_k: int, proxy: str = "synflow",
                 seen: list[float] | None = None):
        self.screen = ZeroCostEvaluator(proxy, data, settings.seed)
        self.train = TrainEvaluator(data, settings)
        self.top_k = top_k
        self.scores: list[float] = list(seen or [])
        self._lock = threading.Lock()

    def __call__(self, spec: Spec, report: Report | None = None) -> Evaluation:
        score = self.screen(spec).score
        with self._lock:
            better = sum(s > score for s in self.scores)
            self.scores.append(score)
        if better >= self.top_k:
            raise Rejected(f"{self.screen.proxy} score {score:.3g} is not among the top {self.top_k} so far")
        result = self.train(spec, report)
        result.proxy_score = score
        return result


def make_evaluator(name: str, data: Split, settings: TrainSettings, top_k: int = 5,
                   seen_scores: list[float] | None = None):
    if name == "train":
        return TrainEvaluator(data, settings)
    if name == "hybrid":
        return HybridEvaluator(data, settings, top_k, seen=seen_scores)
    return ZeroCostEvaluator(name.split(":", 1)[1], data, settings.seed)
