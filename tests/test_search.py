"""`nas search` end to end on real data with a real Optuna journal: outputs, resume after kill -9,
failures that don't stop the search, careless input."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nas
from nas.evaluate.evaluators import Evaluation
from nas.search import optuna_backend, resolve_config, run_search
from nas.search.config import SearchConfig
from nas.spec import spec_hash

NAS = str(Path(sys.executable).parent / "nas")
# the search alone (the final stage: tests/test_final.py), every candidate trained (skipping: test_search.py)
CHEAP = ["target_flops=2M", "epochs=1", "final_top_k=0", "skip_hopeless=false"]


def _records(run_dir):
    return optuna_backend.records(Path(run_dir), SearchConfig())


def test_precedence_defaults_experiment_command_line():
    config, _ = resolve_config(["experiment=efficientnet_b0"])
    assert (config.space, config.target_flops, config.w) == ("mnas", 400e6, -0.07)
    config, _ = resolve_config(["experiment=efficientnet_b0", "w=-0.5", "target_flops=1.2G"])
    assert (config.w, config.target_flops) == (-0.5, 1.2e9)
    assert resolve_config([])[0].w == -0.7


def test_every_backend_is_declared_and_provides_the_interface():
    import inspect

    from nas.search.backend import BACKENDS, Backend, backend_for

    wanted = {name for name, _ in inspect.getmembers(Backend, inspect.isfunction) if not name.startswith("_")}
    assert wanted == {"search", "records", "recover_interrupted"}
    for name in BACKENDS:
        backend = backend_for(name)
        assert all(callable(getattr(backend, function, None)) for function in wanted), name
    with pytest.raises(nas.UserError, match="did you mean 'optuna'"):
        backend_for("optuan")


def test_the_backend_key_allows_exactly_the_declared_backends():
    from nas import settings
    from nas.search.backend import BACKENDS

    # nas.settings may not import nas.search, so the backend= choices are a second list: it must agree.
    assert set(settings.BACKENDS) == set(BACKENDS) == set(settings.KEYS["backend"].parse.options)


def test_search_writes_every_output(tiny_space, tmp_path):
    out = tmp_path / "run"
    result = run_search([f"space={tiny_space}", "trials=3", *CHEAP, f"out={out}"], progress=False)
    assert len(result.records) == 3 and not result.resumed
    for name in ("config.yaml", "study.journal", "trials.csv", "best.yaml", "pareto.png", "report.md"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert {"number", "state", "params", "flops", "accuracy", "reward", "seconds", "spec_hash"} <= set(rows[0])
    assert all(r["state"] == "complete" and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    best = nas.load_spec(out)  # a run directory loads as its best.yaml
    assert nas.count_cost(best).params == sum(p.numel() for p in nas.build_model(best).parameters())
    assert max(float(r["reward"]) for r in rows) == pytest.approx(result.best["reward"])
    assert list((out / "pareto").glob("trial-*.yaml"))


def test_export_rebuilds(tiny_space, tmp_path):
    out = tmp_path / "run"
    run_search([f"space={tiny_space}", "trials=2", *CHEAP, f"out={out}"], progress=False)
    exported = subprocess.run([NAS, "export", str(out), "--trial", "1", "-o", str(tmp_path / "x")],
                              capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    spec = nas.load_spec(exported.stdout.strip())
    assert nas.count_cost(spec).flops > 0
    nas.build_model(spec)
    pareto = subprocess.run([NAS, "export", str(out), "--pareto", "-o", str(tmp_path / "p")], capture_output=True,
                            text=True)
    assert pareto.returncode == 0 and pareto.stdout.strip()


def test_resume_stops_at_the_total_and_extends(tiny_space, tmp_path):
    out = tmp_path / "run"
    args = [f"space={tiny_space}", *CHEAP, "evaluator=zero_cost:params", f"out={out}"]
    run_search(args + ["trials=3"], progress=False)
    said = []
    again = run_search(args + ["trials=3"], progress=False, say=said.append)
    assert again.resumed and "3 of 3" in said[0] and len(again.records) == 3
    more = run_search(args + ["trials=5"], progress=False, say=said.append)
    assert len(more.records) == 5


def test_identical_architecture_is_evaluated_once(tmp_path, tiny_space):
    text = tiny_space.read_text().replace("block: [mbconv, separable]", "block: [mbconv]")
    text = text.replace("kernel: [3, 5]", "kernel: [3]").replace("expansion: [3, 6]", "expansion: [3]")
    text = text.replace("channel_scale: [0.75, 1.0, 1.5]", "channel_scale: [1.0]")
    one = tmp_path / "one.yaml"
    one.write_text(text)
    calls = []

    def evaluator(spec, report=None):
        calls.append(spec)
        return Evaluation(0.5, 0.0)

    result = run_search([f"space={one}", "trials=3", *CHEAP, f"out={tmp_path / 'run'}"], evaluator=evaluator,
                        progress=False)
    assert len(calls) == 1
    assert sum(bool(r.get("cached")) for r in result.records) == 2


def test_nan_trial_is_failed_and_the_search_goes_on(tiny_space, tmp_path):
    calls = []

    def evaluator(spec, report=None):
        calls.append(1)
        return Evaluation(float("nan") if len(calls) % 2 else 0.7, 0.1)

    result = run_search([f"space={tiny_space}", "trials=4", *CHEAP, "sampler=random", f"out={tmp_path / 'run'}"],
                        evaluator=evaluator, progress=False)
    states = [r["state"] for r in result.records]
    assert len(states) == 4 and "failed" in states and "complete" in states
    assert all(r["reward"] is None for r in result.records if r["state"] == "failed")
    assert result.best["accuracy"] == 0.7


def test_hard_limit_rejects_before_training(tiny_space, tmp_path):
    calls = []

    def evaluator(spec, report=None):
        calls.append(1)
        return Evaluation(0.5, 0.0)

    result = run_search([f"space={tiny_space}", "trials=3", *CHEAP, "max_cost=1k", f"out={tmp_path / 'run'}"],
                        evaluator=evaluator, progress=False)
    assert not calls
    assert all(r["state"] == "pruned" and "hard limit" in r["note"] for r in result.records)
    assert not (tmp_path / "run" / "best.yaml").exists()


def _hopeless_by_replay(records, w):
    """Which trials a skipping search must skip: replaying a run that trained every candidate, those whose
    reward at accuracy 1, (FLOPs / 2M)^w, is below the best reward of the trials trained before them."""
    best, expected = float("-inf"), set()
    for r in sorted(records, key=lambda r: r["number"]):
        if (r["flops"] / 2e6) ** w < best:
            expected.add(r["number"])
        else:
            best = max(best, r["reward"])
    return expected


def test_a_candidate_that_cannot_beat_the_best_is_skipped_untrained(tiny_space, tmp_path):
    trained = []

    def evaluator(spec, report=None):  # an accuracy fixed per architecture, between 0.5 and 0.9
        trained.append(spec)
        return Evaluation(0.5 + 0.4 * int(spec_hash(spec)[:4], 16) / 0xFFFF, 0.0)

    # random proposals do not depend on what earlier trials earned: both runs propose the same candidates
    pairs = [f"space={tiny_space}", "trials=10", "target_flops=2M", "epochs=1", "w=-1", "sampler=random"]
    everyone = run_search([*pairs, "skip_hopeless=false", "final_top_k=0", f"out={tmp_path / 'all'}"],
                          evaluator=evaluator, progress=False)
    assert len(trained) == 10
    expected = _hopeless_by_replay(everyone.records, -1)
    assert 0 < len(expected) <= 8  # some skipped (else the test proves nothing), two left for the final stage

    trained.clear()
    out = tmp_path / "skipping"
    result = run_search([*pairs, "final_top_k=2", "final_epochs=1", f"out={out}"], evaluator=evaluator,
                        progress=False)
    skipped = {r["number"] for r in result.records if r.get("skipped")}
    assert skipped == expected
    assert all(r["state"] == "pruned" and r["accuracy"] is None and not r["curve"] for r in result.records
               if r["number"] in skipped)
    assert [r["decisions"] for r in result.records] == [r["decisions"] for r in everyone.records]
    assert result.best["reward"] == everyone.best["reward"]  # a skipped candidate never wins
    assert len(trained) == 10 - len(skipped) + 2 * 2  # the final stage trains every finalist, both seeds
    assert all(r["state"] == "complete" for r in result.final)
    report = (out / "report.md").read_text()
    assert f"{len(skipped)} skipped untrained" in report
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert sum("skipped untrained" in r["note"] for r in rows) == len(skipped)


def test_the_final_stage_trains_every_finalist(tiny_space, tmp_path):
    """At accuracy 1 everywhere the best search candidate is the cheapest, and the runner-up could not beat its
    final reward: still trained, since the final stage compares finalists, not candidates with the search."""
    result = run_search([f"space={tiny_space}", "trials=8", "target_flops=2M", "epochs=1", "sampler=random",
                         "seed=3", "final_top_k=2", "final_epochs=1", f"out={tmp_path / 'run'}"],
                        evaluator=lambda spec, report=None: Evaluation(1.0, 0.0), progress=False)
    assert sum(r["state"] == "complete" for r in result.records) >= 2
    assert [r["state"] for r in result.final] == ["complete"] * 4


def test_the_progress_line_says_a_trial_was_skipped(capsys):
    from nas.search.run import ProgressBar

    bar = ProgressBar(total=2, done=0, previous=[], enabled=True)  # not a terminal here: one line per trial
    bar.update_with({"number": 0, "state": "complete", "reward": 1.5})
    bar.update_with({"number": 1, "state": "pruned", "reward": None, "skipped": True})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["trial 0 (1/2): complete, reward 1.5000; best reward 1.5000",
                     "trial 1 (2/2): skipped untrained (could not beat the best); best reward 1.5000"]


def test_skipping_needs_a_score_with_a_ceiling(tiny_space, tmp_path):
    """A zero-cost score is no accuracy (its ceiling is not 1): nothing is skipped."""
    result = run_search([f"space={tiny_space}", "trials=6", "target_flops=2M", "w=-3", "sampler=random",
                         "evaluator=zero_cost:params", "final_top_k=0", f"out={tmp_path / 'run'}"], progress=False)
    assert all(r["state"] == "complete" for r in result.records)


def test_killed_search_resumes_without_losing_a_finished_trial(tiny_space, tmp_path):
    out = tmp_path / "run"
    cmd = [NAS, "search", f"space={tiny_space}", "trials=5", *CHEAP, f"out={out}", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    finished = []
    while time.time() < deadline:
        time.sleep(0.5)
        if (out / optuna_backend.STORAGE_FILE).exists():
            finished = [r for r in _records(out) if r["state"] == "complete"]
            if len(finished) >= 2:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(finished) >= 2, "the search never finished two trials"
    before = {r["number"]: r["accuracy"] for r in _records(out) if r["state"] == "complete"}
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stdout
    after = _records(out)
    done = {r["number"]: r["accuracy"] for r in after if r["state"] == "complete"}
    assert all(done[n] == acc for n, acc in before.items())  # nothing finished was lost or redone
    counted = [r for r in after if r["state"] in ("complete", "pruned", "failed")]
    assert len(counted) == 5
    assert not list(out.glob(".*.tmp"))  # no half-written file


@pytest.mark.parametrize("args, words", [
    (["space=nosuch"], "space"),
    (["target_flops=abc"], "target_flops"),
    (["target_flops=-5M"], "target_flops"),
    (["trials=0"], "trials"),
    (["target_flop=400M"], "did you mean 'target_flops'"),
    (["sampler=annealing"], "sampler"),
    (["dataset=imagenet"], "dataset"),
    (["experiment=nosuch"], "experiment"),
    (["objective=latency"], "target"),
    (["trials"], "key=value"),
])
def test_careless_input_is_one_line(args, words, tmp_path):
    done = subprocess.run([NAS, "search", *args, f"out={tmp_path / 'run'}"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert words in lines[0]
    assert not (tmp_path / "run").exists()


def test_malformed_space_yaml_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nskeleton: [{out_channels: 16, repeats: 1\n")
    done = subprocess.run([NAS, "search", f"space={bad}"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "malformed YAML" in done.stderr
