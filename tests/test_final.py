"""The final selection: the best few candidates re-trained longer under several seeds, in a second study of
the run's journal that resumes after kill -9; its fidelity in the report."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import nas
from nas.search import final, optuna_backend, run_search
from nas.search.config import resolve_config
from nas.spec import spec_hash

CHEAP = ["target_flops=2M", "epochs=1", "dataset=digits", "skip_hopeless=false"]  # every search candidate trains


def test_kendall_tau_in_plain_python():
    assert final.kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert final.kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert final.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert final.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 6 ** 0.5)   # tau-b with a tie (scipy's)
    assert final.kendall_tau([1], [2]) is None


def test_top_candidates_are_distinct_and_by_proxy_reward():
    records = [{"number": n, "state": "complete", "reward": r, "spec_hash": h}
               for n, (r, h) in enumerate([(0.5, "a"), (0.9, "b"), (0.8, "b"), (0.7, "c"), (0.6, "d")])]
    assert [r["number"] for r in final.top_candidates(records, 3)] == [1, 3, 4]


def _row(number: int, accuracies: list[float], final_reward: float) -> dict:
    return {"search": {"number": number}, "accuracies": dict(enumerate(accuracies)),
            "accuracy": sum(accuracies) / len(accuracies), "final_reward": final_reward,
            "spread": max(accuracies) - min(accuracies)}


def test_the_winners_lead_is_the_accuracy_the_runner_up_lacks_weighed_against_the_seed_spreads():
    winner, runner_up = _row(7, [0.90, 0.92], 1.10), _row(3, [0.80, 0.84], 1.0)
    best, second, lacking = final.lead([runner_up, winner])
    assert (best, second) == (winner, runner_up)
    assert lacking == pytest.approx(0.82 * 0.10)   # 10 % more reward: 10 % more accuracy at its cost
    assert "search trial 3) lacks 0.0820" in final.lead_line([runner_up, winner])
    assert "more than their seed spreads (0.0200 and 0.0400)" in final.lead_line([runner_up, winner])
    close = _row(3, [0.80, 0.90], 1.05)            # lacks about 0.043, its seeds 0.10 apart
    assert "less than their seed spreads" in final.lead_line([winner, close])
    assert "no seed spread" in final.lead_line([_row(7, [0.9], 1.1), _row(3, [0.8], 1.0)])
    tied = _row(3, [0.9, 0.92], 1.10)
    assert final.winner([winner, tied]) is winner and final.winner([tied, winner]) is tied  # the proxy's order
    assert "runner-up (search trial 3) ties it" in final.lead_line([winner, tied])
    assert final.lead([winner]) is None and final.lead([]) is None
    assert final.lead([winner, _row(3, [0.0, 0.0], 0.0)]) is None


def test_final_stage_picks_best_yaml_and_shows_both_stages(tiny_space, tmp_path):
    out = tmp_path / "run"
    result = run_search([f"space={tiny_space}", "trials=4", *CHEAP, "final_top_k=2", "final_epochs=2",
                         f"out={out}"], progress=False, say=lambda line: None)
    assert len(result.final) == 4 and {r["seed"] for r in result.final} == {0, 1}
    summary = final.summarise(result.config, result.records, result.final)
    chosen = final.winner(summary)
    assert spec_hash(nas.load_spec(out / "best.yaml")) == chosen["search"]["spec_hash"] == result.best["spec_hash"]
    assert result.best["reward"] == pytest.approx(chosen["final_reward"])
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["stage"] for r in rows] == ["search"] * 4 + ["final"] * 4
    report = (out / "report.md").read_text()
    assert "## Final selection" in report and "Kendall tau between proxy and final rewards" in report
    assert f"seed spread (max - min accuracy) {chosen['spread']:.4f}" in report
    assert final.lead_line(summary) in report and "the winner's lead: the runner-up" in report


def test_a_latency_search_measures_its_finalists(tiny_space, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    result = run_search([f"space={tiny_space}", "trials=4", "objective=latency", "target=1ms", "epochs=1",
                         "dataset=digits", "final_top_k=2", "final_epochs=1", "final_seeds=1", f"out={out}"],
                        progress=False, say=lambda line: None)
    picks = final.top_candidates(result.records, 2)
    by_hash = {r["spec_hash"]: r for r in result.final}
    assert set(by_hash) == {p["spec_hash"] for p in picks}
    for pick in picks:  # the final stage rewarded a measurement, not the search's prediction
        assert by_hash[pick["spec_hash"]]["cost"] != pick["cost"]
    summary = final.summarise(result.config, result.records, result.final)
    assert all(row["cost"] == by_hash[row["search"]["spec_hash"]]["cost"] for row in summary)
    assert result.best["cost"] == final.winner(summary)["cost"]
    report = (out / "report.md").read_text()
    assert "latency in this stage: measured end to end" in report and "| measured latency (ms) |" in report
    # a resume keeps the figures the finished trainings recorded: nothing is measured again
    again = run_search([f"out={out}"], progress=False, say=lambda line: None)
    assert {r["spec_hash"]: r["cost"] for r in again.final} == {h: r["cost"] for h, r in by_hash.items()}
    assert again.best["cost"] == result.best["cost"]


def _final_trials(out: Path) -> list[dict]:
    return [r for r in final.records(out) if r["state"] == "complete"]


def test_final_stage_resumes_after_sigkill(tiny_space, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas.cli", "search", f"space={tiny_space}", "trials=3", *CHEAP, "final_top_k=2",
           "final_epochs=3", f"out={out}", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, done = time.time() + 240, []
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        if (out / optuna_backend.STORAGE_FILE).exists():
            done = _final_trials(out)
            if done:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done, "the final stage never finished a training before the kill"
    before = {(r["spec_hash"], r["seed"]): r["accuracy"] for r in _final_trials(out)}
    assert len(before) < 4, "the run finished before it could be killed"

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = _final_trials(out)
    pairs = [(r["spec_hash"], r["seed"]) for r in after]
    assert len(pairs) == len(set(pairs)) == 4                       # every pair once, none redone
    assert all({(r["spec_hash"], r["seed"]): r["accuracy"] for r in after}[p] == a for p, a in before.items())
    # best.yaml is what the final stage picks from these records, as an uninterrupted run would
    config, _ = resolve_config([], yaml.safe_load((out / "config.yaml").read_text()))
    search = optuna_backend.records(out, config)
    chosen = final.winner(final.summarise(config, search, final.records(out)))
    assert spec_hash(nas.load_spec(out / "best.yaml")) == chosen["search"]["spec_hash"]


def test_ctrl_c_in_the_final_stage_queues_the_training_again(tiny_space, tmp_path):
    """Optuna's own loop would record the cut training as failed, and a failed pair is never trained again."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas.cli", "search", f"space={tiny_space}", "trials=2", *CHEAP, "final_top_k=1",
           "final_epochs=20", f"out={out}", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if (out / optuna_backend.STORAGE_FILE).exists() and any(
                    r["state"] == "running" for r in final.records(out)):
                break
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr and "final" in stderr
    stopped = final.records(out)
    assert any(r["state"] == "interrupted" for r in stopped)
    assert not any(r["state"] in ("failed", "running") for r in stopped)

    again = run_search([f"out={out}", "final_epochs=1"], progress=False, say=lambda line: None)
    assert sorted(r["seed"] for r in again.final if r["state"] == "complete") == [0, 1]  # both seeds trained


def test_a_resume_with_other_final_epochs_trains_again_and_counts_only_those(tiny_space, tmp_path):
    args = [f"space={tiny_space}", "trials=2", *CHEAP, "final_top_k=1", "final_seeds=1", f"out={tmp_path / 'run'}"]
    first = run_search([*args, "final_epochs=1"], progress=False, say=lambda line: None)
    again = run_search([*args, "final_epochs=2"], progress=False, say=lambda line: None)
    assert [r["epochs"] for r in first.final] == [1] and sorted(r["epochs"] for r in again.final) == [1, 2]
    (row,) = final.summarise(again.config, again.records, again.final)
    assert row["accuracy"] == next(r["accuracy"] for r in again.final if r["epochs"] == 2)


def test_a_resume_with_more_trials_trains_the_new_finalists(tiny_space, tmp_path):
    """The final study outlives the search's size: a resume that adds trials may change the best few, and their
    trainings must run (they failed when the candidate was a categorical over the search's trials so far)."""
    args = [f"space={tiny_space}", *CHEAP, "sampler=random", "final_top_k=2", "final_epochs=1",
            f"out={tmp_path / 'run'}"]
    first = run_search([*args, "trials=3"], progress=False, say=lambda line: None)
    again = run_search([*args, "trials=10"], progress=False, say=lambda line: None)
    picks = [p["spec_hash"] for p in final.top_candidates(again.records, 2)]
    assert picks != [p["spec_hash"] for p in final.top_candidates(first.records, 2)]  # what this test is about
    assert not [r for r in again.final if r["state"] != "complete"]
    summary = final.summarise(again.config, again.records, again.final)
    assert [(row["search"]["spec_hash"], sorted(row["accuracies"])) for row in summary] == [(p, [0, 1]) for p in picks]


def test_two_processes_sharing_a_run_train_each_finalist_once(tiny_space, tmp_path):
    """Both wait until the search's last trial is in, so they pick the same finalists, and share the trainings."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas.cli", "search", f"space={tiny_space}", "trials=6", *CHEAP, "sampler=random",
           "final_top_k=2", "final_epochs=1", f"out={out}", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    config, _ = resolve_config([], yaml.safe_load((out / "config.yaml").read_text()))
    search = optuna_backend.records(out, config)
    assert [r["state"] for r in search] == ["complete"] * 6
    trained = final.records(out)
    assert [r["state"] for r in trained] == ["complete"] * 4, [r.get("note") for r in trained]
    picks = [p["spec_hash"] for p in final.top_candidates(search, 2)]
    assert sorted((r["spec_hash"], r["seed"]) for r in trained) == sorted((p, s) for p in picks for s in (0, 1))
    chosen = final.winner(final.summarise(config, search, trained))
    assert spec_hash(nas.load_spec(out / "best.yaml")) == chosen["search"]["spec_hash"]


def test_the_final_stage_waits_for_the_search_trials_other_processes_evaluate(tiny_space, tmp_path):
    """A process that runs out of search trials to claim while another still evaluates one waits for it before
    picking its finalists: it would otherwise pick from part of the search (and the two processes differently)."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "run"
    done = run_search([f"space={tiny_space}", "trials=2", *CHEAP, "final_top_k=0", f"out={out}"], progress=False,
                      say=lambda line: None)
    study = optuna_backend.open_study(out, done.config)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # the other process
    try:
        trial = study.ask()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{other.pid}")
        said = []
        with ThreadPoolExecutor(1) as pool:
            settling = pool.submit(run_search, [f"out={out}", "trials=3", "final_top_k=1", "final_seeds=1",
                                                "final_epochs=1"], progress=False, say=said.append)
            time.sleep(3.0)
            assert not settling.done(), settling.exception()
            assert said[-1].startswith(f"waiting for trial(s) {trial.number}, which other processes are evaluating")
            first = study.trials[0]
            for key, value in first.user_attrs.items():  # the other process's trial finishes
                trial.set_user_attr(key, value)
            study.tell(trial, first.value)
            result = settling.result(timeout=120)
        assert [r["state"] for r in result.records] == ["complete"] * 3  # what the finalists were picked from
        assert len(result.final) == 1
    finally:
        other.kill()
        other.wait()


def test_a_dead_process_s_search_trial_is_not_waited_for(tiny_space, tmp_path):
    import socket

    from nas.search.run import wait_for_other_processes

    out = tmp_path / "run"
    done = run_search([f"space={tiny_space}", "trials=2", *CHEAP, "final_top_k=0", f"out={out}"], progress=False,
                      say=lambda line: None)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial = optuna_backend.open_study(out, done.config).ask()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{gone.stdout.strip()}")  # killed while it evaluated
    wait_for_other_processes(done.config, out, lambda line: None)
    assert [r["state"] for r in optuna_backend.records(out, done.config)] == ["complete", "complete", "interrupted"]


def test_the_winner_waits_for_the_final_trainings_other_processes_run(tiny_space, tmp_path):
    import socket
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "run"
    args = [f"space={tiny_space}", "trials=2", *CHEAP, "final_top_k=1", "final_epochs=1", f"out={out}"]
    done = run_search([*args, "final_seeds=1"], progress=False, say=lambda line: None)
    (first,) = final.open_final_study(out).trials
    study = final.open_final_study(out)
    study.enqueue_trial({"seed": 1}, user_attrs={"candidate": done.final[0]["spec_hash"]})
    trial = study.ask()  # another process trains the second seed
    trial.suggest_int("seed", *final.SEED_RANGE)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{other.pid}")
        said = []
        with ThreadPoolExecutor(1) as pool:
            joining = pool.submit(run_search, [*args, "final_seeds=2"], progress=False, say=said.append)
            time.sleep(3.0)
            assert not joining.done(), joining.exception()
            assert said[-1].startswith("waiting for 1 final training(s) other processes are running")
            for key, value in first.user_attrs.items():
                if key != "worker":
                    trial.set_user_attr(key, value)
            study.tell(trial, first.value)
            result = joining.result(timeout=60)
    finally:
        other.kill()
        other.wait()
    assert sorted(r["seed"] for r in result.final if r["state"] == "complete") == [0, 1]
    (row,) = final.summarise(result.config, result.records, result.final)
    assert sorted(row["accuracies"]) == [0, 1]


def test_a_pair_an_earlier_nas_queued_with_its_candidate_as_a_parameter_still_trains(tiny_space, tmp_path):
    out = tmp_path / "run"
    args = [f"space={tiny_space}", "trials=2", *CHEAP, "final_epochs=1", f"out={out}"]
    done = run_search([*args, "final_top_k=0"], progress=False, say=lambda line: None)
    (pick,) = final.top_candidates(done.records, 1)
    final.open_final_study(out).enqueue_trial({"candidate": pick["spec_hash"], "seed": 0})  # the old form
    again = run_search([*args, "final_top_k=1", "final_seeds=1"], progress=False, say=lambda line: None)
    assert [(r["state"], r["spec_hash"], r["seed"]) for r in again.final] == [("complete", pick["spec_hash"], 0)]
