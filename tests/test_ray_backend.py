"""`backend=ray` end to end on a real local Ray instance: a search, a failing trial, a repeated
architecture, a grid with ASHA, a resumed run, and a driver killed mid-search that resumes through
Tuner.restore on the same cluster.

One Ray instance (2 CPUs, no dashboard) serves the module's Ray tests; deselect them with ``-m "not ray"``.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray import cloudpickle

import nas
from nas.evaluate.evaluators import Evaluation
from nas.search import ray_backend, run_search
from nas.search.candidate import Context
from nas.search.config import SearchConfig, resolve_config
from nas.search.ray_records import JournalFollower, Sessions
from nas.search.run import run_trials
from nas.spec import from_dict

# The evaluators below travel to Ray's workers, which can't import this test module: send them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

NAS = str(Path(sys.executable).parent / "nas")
CHEAP = ["target_flops=2M", "epochs=1", "backend=ray", "final_top_k=0"]  # the search alone (test_final.py)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    yield
    ray.shutdown()


def ray_test(test):
    """Marked `ray`, and run on the module's local Ray instance (which the backend uses when it finds one)."""
    return pytest.mark.ray(pytest.mark.usefixtures("local_ray")(test))


def _records(run_dir):
    return ray_backend.records(Path(run_dir), SearchConfig())


@ray_test
def test_search_writes_every_output(tiny_space, tmp_path):
    out = tmp_path / "run"
    result = run_search([f"space={tiny_space}", "trials=3", *CHEAP, f"out={out}"], progress=False)
    assert len(result.records) == 3 and not result.resumed
    for name in ("config.yaml", "trials.csv", "best.yaml", "pareto.png", "report.md", "ray/trials.jsonl"):
        assert (out / name).exists(), name
    assert list((out / "pareto").glob("trial-*.yaml"))
    assert (out / "ray" / "session-1" / "tuner.pkl").exists()  # Ray Tune's own storage
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert all(r["state"] == "complete" and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    for r in result.records:  # the Optuna backend's record, measured in a Ray worker
        assert r["decisions"] and r["spec_hash"] and len(r["curve"]) == 1 and r["seconds"] > 0
        spec = nas.loads(r["spec_yaml"])
        assert nas.count_cost(spec).params == r["params"]
    best = nas.load_spec(out)
    assert nas.count_cost(best).flops == result.best["flops"]


def _fails_on_separable(spec, report=None):
    """A separable first stage: an error with kernel 3, and with kernel 5 the worker process dies."""
    first = spec.stages[0].block
    if first.kind == "separable" and first.kernel == 5:
        os._exit(3)
    if first.kind == "separable":
        raise ValueError("no separable first stage here")
    return Evaluation(0.6, 0.01)


@ray_test
def test_failing_trial_does_not_stop_the_run(tiny_space, tmp_path):
    result = run_search([f"space={tiny_space}", "trials=4", *CHEAP, "sampler=random", "concurrent=2",
                         f"out={tmp_path / 'run'}"], evaluator=_fails_on_separable, progress=False)
    states = [r["state"] for r in result.records]
    assert len(states) == 4 and "complete" in states
    failed = [r for r in result.records if r["state"] == "failed"]
    assert all(r["reward"] is None for r in failed)
    assert any("no separable first stage" in r["note"] for r in failed)  # caught in the trial
    died = [r for r in failed if r["note"].startswith("trial error")]  # FailureConfig retried it, then failed
    assert died and all(r["decisions"]["stage0.kernel"] == 5 and r["spec_yaml"] for r in died)
    assert result.best["accuracy"] == 0.6


@ray_test
def test_resume_extends_and_nsga2(tiny_space, tmp_path):
    out = tmp_path / "run"
    args = [f"space={tiny_space}", *CHEAP, "evaluator=zero_cost:params", "sampler=nsga2", f"out={out}"]
    first = run_search(args + ["trials=3"], progress=False)
    said = []
    again = run_search(args + ["trials=3"], progress=False, say=said.append)
    assert again.resumed and "3 of 3" in said[0] and len(again.records) == 3
    more = run_search(args + ["trials=5"], progress=False)
    assert len(more.records) == 5 and all(r["state"] == "complete" for r in more.records)
    assert [r["trial_id"] for r in more.records[:3]] == [r["trial_id"] for r in first.records]
    assert (out / "ray" / "session-2.done").exists()  # the extra trials ran in a new, warm-started session


@ray_test
def test_identical_architecture_is_trained_once(tmp_path, tiny_space):
    text = tiny_space.read_text().replace("block: [mbconv, separable]", "block: [mbconv]")
    text = text.replace("kernel: [3, 5]", "kernel: [3]").replace("expansion: [3, 6]", "expansion: [3]")
    one = tmp_path / "one.yaml"
    one.write_text(text.replace("channel_scale: [0.75, 1.0, 1.5]", "channel_scale: [1.0]"))
    result = run_search([f"space={one}", "trials=3", *CHEAP, f"out={tmp_path / 'run'}"], progress=False)
    assert [bool(r["cached"]) for r in result.records] == [False, True, True]
    assert len({r["accuracy"] for r in result.records}) == 1


def _tiny_candidate(index: int):
    return from_dict({
        "name": f"candidate{index}", "resolution": 16, "num_classes": 10,
        "stem": [{"block": "conv", "out_channels": 8 * (index + 1), "kernel": 3, "stride": 2}],
        "stages": [{"block": "mbconv", "repeats": 1, "kernel": 3, "stride": 1, "expansion": 3, "out_channels": 16}],
        "head": {"channels": 32},
    })


def _falling_accuracy(spec, report=None):
    """Candidate k scores 0.9 - 0.2 k at every epoch (tune.report waits for the driver's decision, so ASHA
    stops a trial at the epoch it judges, however fast the trial runs)."""
    accuracy = 0.9 - 0.2 * (spec.stem[0].out_channels // 8 - 1)
    for epoch in range(3):
        report(epoch, accuracy)
    return Evaluation(accuracy, 0.9, [accuracy] * 3)


@ray_test
def test_grid_runs_every_point_once_and_asha_stops_the_poor_ones(tmp_path):
    config, _ = resolve_config(["backend=ray", "epochs=3", "trials=4", "reward=accuracy", "concurrent=1"])
    grid = {"candidate": [0, 1, 2, 3]}

    def propose(choose):  # a closure, as the scale grid builds: shipped to the workers by value
        return _tiny_candidate(choose("candidate", grid["candidate"]))

    def context(seen):
        return Context(config, propose, _falling_accuracy, grid=grid)

    run_dir = tmp_path / "grid"
    run_dir.mkdir()
    result = run_trials(config, run_dir, False, context, progress=False)
    by_point = {r["decisions"]["candidate"]: r for r in result.records}
    assert sorted(by_point) == [0, 1, 2, 3] and len(result.records) == 4
    assert by_point[0]["state"] == "complete" and by_point[0]["accuracy"] == pytest.approx(0.9)
    stopped = [r for r in result.records if r["state"] == "pruned"]
    # keep75: a rung at each epoch before the last (epochs 1 and 2), so a stopped trial trained fewer than 3
    assert stopped and all("ASHA" in r["note"] and 1 <= len(r["curve"]) < 3 for r in stopped)
    assert result.best["decisions"] == {"candidate": 0}


def test_journal_skips_a_half_written_line_and_duplicates(tmp_path):
    journal = tmp_path / "ray" / "trials.jsonl"
    journal.parent.mkdir()
    line = json.dumps({"trial_id": "a", "state": "complete", "decisions": {"x": 1}, "accuracy": 0.5})
    journal.write_text(line + "\n" + line + "\n" + '{"trial_id": "b", "sta')
    rows = _records(tmp_path)
    assert len(rows) == 1 and rows[0]["number"] == 0 and rows[0]["accuracy"] == 0.5


def test_journal_follower_hands_on_each_new_record_once(tmp_path):
    journal = tmp_path / "ray" / "trials.jsonl"
    journal.parent.mkdir()
    def line(trial_id):
        return json.dumps({"trial_id": trial_id, "state": "complete", "decisions": {}}) + "\n"

    journal.write_text(line("before"))
    seen = []
    with JournalFollower(tmp_path, seen.append, interval=0.05):
        with journal.open("a") as f:
            f.write(line("a") + '{"trial_id": "b", "sta')  # b half-written: not handed on yet
        deadline = time.time() + 10
        while not seen and time.time() < deadline:
            time.sleep(0.05)
        assert [(r["trial_id"], r["number"]) for r in seen] == [("a", 1)]
        journal.write_text(line("before") + line("a") + line("b"))  # b's line completed
    assert [(r["trial_id"], r["number"]) for r in seen] == [("a", 1), ("b", 2)]  # the last read on leaving


@ray_test
def test_killed_driver_resumes_into_the_same_run(tiny_space, tmp_path):
    """The driver is a `nas search` process on this module's Ray instance (ray_address=): a running cluster."""
    import ray

    out = tmp_path / "run"
    cmd = [NAS, "search", f"space={tiny_space}", "trials=6", "target_flops=2M", "epochs=2", "backend=ray",
           f"ray_address={ray.get_runtime_context().gcs_address}", f"out={out}", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, before = time.time() + 180, []
    while time.time() < deadline and sum(r["state"] == "complete" for r in before) < 2:
        time.sleep(0.3)
        before = _records(out)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert sum(r["state"] == "complete" for r in before) >= 2, "the search never finished two trials"
    assert not (out / "ray" / "session-1.done").exists()  # killed mid-session
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stdout
    after = _records(out)
    assert [(r["trial_id"], r["accuracy"]) for r in after[:len(before)]] == \
        [(r["trial_id"], r["accuracy"]) for r in before]  # nothing finished was lost or redone
    assert sum(r["state"] in ("complete", "pruned", "failed") for r in after) == 6
    assert Sessions(out / "ray").all() == [out / "ray" / "session-1"]  # restored, not started afresh
    assert (out / "ray" / "session-1.done").exists()


@pytest.mark.ray
def test_nas_scale_grid_on_ray(tmp_path):
    """`nas scale` with backend=ray: the grid's evaluator travels to Ray workers and the family is written."""
    out = tmp_path / "scale"
    done = subprocess.run([str(Path(sys.executable).parent / "nas"), "scale", "--phi", "1", "--base", "efficientnet-b0",
                           "--out", str(out), "max_candidates=2", "epochs=1", "backend=ray", "--quiet"],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader((out / "grid.csv").open()))
    assert len(rows) == 2 and all(r["state"] == "complete" for r in rows)
    assert (out / "efficientnet-b0-phi1.yaml").exists()
