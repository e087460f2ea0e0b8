"""Pruning compares the reward (what the search maximises) and keeps about 75 % per rung, on real Optuna studies."""

import random
from types import SimpleNamespace

import optuna
import pytest

from nas.cost import count_cost
from nas.search.candidate import Context, run_candidate
from nas.search.optuna_backend import KeepFractionPruner, _OptunaIO, make_pruner
from nas.settings import SearchConfig, apply
from nas.spec import from_dict


def test_default_pruner_keeps_about_three_quarters_per_rung():
    config = SearchConfig()
    assert config.pruner == "keep75" and isinstance(make_pruner(config), KeepFractionPruner)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config),
                                storage=optuna.storages.InMemoryStorage())
    rng = random.Random(0)
    reached = [0, 0, 0, 0]   # trials that reported at rung (epoch index) 0, 1, 2 and those that finished
    for _ in range(120):
        trial, quality = study.ask(), rng.random()
        for step in range(3):
            reached[step] += 1
            trial.report(quality + rng.gauss(0, 0.1), step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            reached[3] += 1
            study.tell(trial, quality)
    kept = [reached[i + 1] / reached[i] for i in range(3)]
    assert all(0.62 <= k <= 0.88 for k in kept), kept  # asynchronous: about 75 %
    # three rungs compound: about 0.75^3 of the trials finish
    assert reached[3] / reached[0] == pytest.approx(0.75 ** 3, abs=0.12)


def _spec(resolution: int, tiny_spec_dict):
    return from_dict({**tiny_spec_dict, "resolution": resolution, "name": f"r{resolution}"})


def test_cheap_less_accurate_candidate_with_the_higher_reward_survives(tiny_spec_dict):
    """Six accurate, expensive candidates, then a cheap one 20 points less accurate whose reward is higher:
    the default pruner (on the reward) lets it finish; the same pruner on raw accuracy would stop it."""
    expensive, cheap = _spec(32, tiny_spec_dict), _spec(12, tiny_spec_dict)
    target = count_cost(expensive).flops
    config = apply(SearchConfig(), {"target_flops": target, "epochs": 3})
    accuracy = {"r32": [0.80, 0.86, 0.90], "r12": [0.60, 0.66, 0.70]}

    def evaluator(spec, report):
        curve = accuracy[spec.name]
        for epoch, value in enumerate(curve):
            report(epoch, value)
        return SimpleNamespace(score=curve[-1], seconds=0.0, curve=curve, proxy_score=None)

    ctx = Context(config, lambda choose: {"r32": expensive, "r12": cheap}[choose("arch", ["r32", "r12"])], evaluator)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config),
                                storage=optuna.storages.InMemoryStorage())
    for arch in ["r32"] * 6 + ["r12"]:
        study.enqueue_trial({"arch": arch})
    study.optimize(lambda t: run_candidate(ctx, _OptunaIO(study, t, prune=True, epochs=3)).reward, n_trials=7)
    last = study.trials[-1]
    assert last.params == {"arch": "r12"} and last.state == optuna.trial.TrialState.COMPLETE
    assert last.value > max(t.value for t in study.trials[:-1])            # its reward is the highest
    assert last.intermediate_values[0] > study.trials[0].intermediate_values[0]   # the pruner saw rewards

    by_accuracy = optuna.create_study(direction="maximize", pruner=make_pruner(config),
                                      storage=optuna.storages.InMemoryStorage())
    for _ in range(6):
        trial = by_accuracy.ask()
        trial.report(accuracy["r32"][0], 0)
        by_accuracy.tell(trial, accuracy["r32"][-1])
    trial = by_accuracy.ask()
    trial.report(accuracy["r12"][0], 0)
    assert trial.should_prune()   # what an accuracy-based pruner would have done


def test_ray_asha_keeps_the_same_fraction_on_the_reward():
    """Ray's ASHA with the default pruner: the reward metric, a rung at each epoch before the last, ~75 % kept."""
    pytest.importorskip("ray")
    from nas.search.ray_searcher import make_scheduler

    scheduler = make_scheduler(apply(SearchConfig(), {"epochs": 4, "backend": "ray"}))
    assert scheduler._metric == "reward" and scheduler._reduction_factor == pytest.approx(4 / 3)
    bracket, rng = scheduler._brackets[0], random.Random(1)
    reached = [0, 0, 0, 0]
    for number in range(120):
        trial, quality = SimpleNamespace(trial_id=str(number)), rng.random()
        for epoch in (1, 2, 3):
            reached[epoch - 1] += 1
            if bracket.on_result(trial, epoch, quality + rng.gauss(0, 0.1)) == "STOP":
                break
        else:
            reached[3] += 1
    rung_of_epoch = [sum(bool(recorded) for milestone, recorded in bracket._rungs if milestone <= e) for e in (1, 2, 3)]
    assert rung_of_epoch == [1, 2, 3]   # each of epochs 1, 2, 3 met a rung of its own
    kept = [reached[i + 1] / reached[i] for i in range(3)]
    assert all(0.62 <= k <= 0.88 for k in kept), kept  # asynchronous: about 75 %
