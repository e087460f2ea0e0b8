"""The search reward: pure functions of measured numbers (no torch, no optuna).

EfficientNet / MnasNet's soft constraint: ``reward = ACC * (cost / T) ** w``.
- ``w`` < 0 rewards cheaper models. MnasNet used w = -0.07 for latency (a model twice as fast as T gains
  2**0.07 = 5 % reward); EfficientNet reused it with FLOPs. nas defaults to w = -0.7 because its proxy
  accuracies (a few epochs on a small data set) vary far more between candidates than ImageNet
  accuracies do, so a weak cost term would be drowned out; the `efficientnet_b0` experiment restores -0.07.
- MnasNet's piecewise form uses ``w_below`` when cost <= T and ``w_above`` otherwise (w_below = 0,
  w_above = -1 makes T close to a hard limit while not rewarding being far below it).
- A hard limit rejects any candidate whose cost exceeds it before it is trained.
"""

from __future__ import annotations

import math

REWARD_KINDS = ("soft", "piecewise", "hard", "accuracy")


def soft_reward(accuracy: float, cost: float, target: float, w: float) -> float:
    return accuracy * (cost / target) ** w


def piecewise_reward(accuracy: float, cost: float, target: float, w_below: float, w_above: float) -> float:
    return accuracy * (cost / target) ** (w_below if cost <= target else w_above)


def within_hard_limit(cost: float, limit: float | None) -> bool:
    return limit is None or cost <= limit


def reward(accuracy: float, cost: float, target: float, kind: str = "soft", w: float = -0.7,
           w_below: float = 0.0, w_above: float = -1.0) -> float:
    """The reward of one candidate; raises ValueError for a non-finite accuracy or cost (a failed trial)."""
    if accuracy is None or not math.isfinite(accuracy) or not math.isfinite(cost) or cost <= 0:
        raise ValueError(f"cannot reward accuracy={accuracy!r}, cost={cost!r}")
    if kind == "piecewise":
        return piecewise_reward(accuracy, cost, target, w_below, w_above)
    if kind in ("hard", "accuracy"):  # accuracy: the scaling grid, where every candidate costs about the same
        return accuracy  # the limit itself is enforced before training (within_hard_limit)
    return soft_reward(accuracy, cost, target, w)
