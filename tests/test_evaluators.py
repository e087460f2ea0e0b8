"""Evaluators through a real search: zero-cost proxies, the hybrid screen-then-train, NaN accuracies."""

import csv
import math

import pytest

import nas
from nas.evaluate.data import load_dataset
from nas.evaluate.evaluators import Evaluation, ZeroCostEvaluator
from nas.search import run_search

# the search alone (the final stage: tests/test_final.py), every candidate trained (skipping: test_search.py)
CHEAP = ["target_flops=2M", "epochs=1", "sampler=random", "final_top_k=0", "skip_hopeless=false"]



def _rows(run_dir):
    return sorted(csv.DictReader((run_dir / "trials.csv").open()), key=lambda r: int(r["number"]))


@pytest.mark.parametrize("proxy", ["synflow", "naswot"])
def test_zero_cost_search_completes(proxy, tiny_space, tmp_path):
    out = tmp_path / "run"
    result = run_search([f"space={tiny_space}", "trials=4", *CHEAP, f"evaluator=zero_cost:{proxy}", f"out={out}"],
                        progress=False)
    assert [r["state"] for r in result.records] == ["complete"] * 4
    for r in result.records:  # the score stands in for accuracy
        assert math.isfinite(r["accuracy"]) and r["proxy_score"] == r["accuracy"] and r["curve"] == []
    assert (out / "best.yaml").exists()
    assert nas.count_cost(nas.load_spec(out)).flops == result.best["flops"]


def test_hybrid_trains_only_a_candidate_whose_synflow_is_the_best_so_far(tiny_space, tmp_path):
    out = tmp_path / "run"
    result = run_search([f"space={tiny_space}", "trials=5", *CHEAP, "evaluator=hybrid", "top_k=1", "pruner=none",
                         f"out={out}"], progress=False)
    records = sorted(result.records, key=lambda r: r["number"])
    assert len({r["spec_hash"] for r in records}) == 5, "a repeated architecture would skip the screen"
    screen = ZeroCostEvaluator("synflow", load_dataset("digits", seed=0), seed=0)
    scores = [screen(nas.loads(r["spec_yaml"])).score for r in records]
    rows = _rows(out)

    for i, (record, row) in enumerate(zip(records, rows)):
        trained = all(scores[i] >= earlier for earlier in scores[:i])   # top 1 of the scores so far
        if trained:
            assert row["state"] == "complete" and 0 <= float(row["accuracy"]) <= 1
            assert record["proxy_score"] == pytest.approx(scores[i]) and len(record["curve"]) == 1
        else:
            assert row["state"] == "pruned" and row["accuracy"] == ""
            assert "synflow score" in row["note"] and "not among the top 1" in row["note"]
    # the second candidate is trained exactly when its synflow beats the first's
    assert (rows[1]["state"] == "complete") == (scores[1] >= scores[0])
    assert {r["state"] for r in rows} == {"complete", "pruned"}, "this seed should exercise both outcomes"


def test_nan_accuracy_fails_the_trial_and_the_search_goes_on(tiny_space, tmp_path):
    def evaluator(spec, report=None):  # NaN for every architecture whose first stage is separable
        nan = spec.stages[0].block.kind == "separable"
        return Evaluation(float("nan") if nan else 0.5, 0.0)

    out = tmp_path / "run"
    result = run_search([f"space={tiny_space}", "trials=6", *CHEAP, f"out={out}"], evaluator=evaluator,
                        progress=False)
    rows = _rows(out)
    failed = [r for r in rows if r["state"] == "failed"]
    assert len(rows) == 6 and failed and len(failed) < 6
    assert all(r["note"].startswith("FloatingPointError") and "nan" in r["note"] and r["reward"] == ""
               for r in failed)
    assert nas.load_spec(out).stages[0].block.kind == "mbconv"
    assert result.best["accuracy"] == 0.5
