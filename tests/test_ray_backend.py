"""`backend=ray` end to end on a real Ray cluster of two nodes on this machine: a search, a failing trial,
a repeated architecture, a grid with ASHA, a resumed run, and a driver killed mid-search that resumes into
the same run without reading anything pickled from the run folder. Also: a local Ray instance that nas
starts (closed to callers without the run's token, gone with the driver) and a cluster with token
authentication that nas has no token for.

One `ray.cluster_utils.Cluster` (two nodes of one CPU each, no dashboard) serves the module's Ray tests;
deselect them with ``-m "not ray"``.
"""

import csv
import functools
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray import cloudpickle

import nas
from nas.evaluate.evaluators import Evaluation
from nas.search import ray_backend, ray_records, run_search
from nas.search.candidate import Context
from nas.search.config import SearchConfig, resolve_config
from nas.search.ray_worker import BEST_KEY
from nas.search.run import prepare_run, run_trials
from nas.spec import from_dict, spec_hash

# The evaluators below travel to Ray's workers, which can't import this test module: send them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

NAS = str(Path(sys.executable).parent / "nas")
RAY = str(Path(sys.executable).parent / "ray")
# the search alone (the final stage: test_final.py), every candidate trained (skipping: test_search.py)
CHEAP = ["target_flops=2M", "epochs=1", "backend=ray", "final_top_k=0", "skip_hopeless=false"]


@pytest.fixture(scope="module")
def two_nodes():
    """A real two-node Ray cluster on this machine (one CPU each), this process connected as a driver."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="error")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def ray_test(test):
    """Marked `ray`, and run on the module's two-node cluster (which the backend uses when it finds one)."""
    return pytest.mark.ray(pytest.mark.usefixtures("two_nodes")(test))


def _records(run_dir):
    return ray_backend.records(Path(run_dir), SearchConfig())


def _load_study(run_dir):
    """The run's study as anyone reads it: optuna.load_study on its journal."""
    storage = JournalStorage(JournalFileBackend(str(Path(run_dir) / "study.journal")))
    return optuna.load_study(study_name="nas", storage=storage)


@ray_test
def test_search_writes_every_output(tiny_space, tmp_path):
    out = tmp_path / "run"
    result = run_search([f"space={tiny_space}", "trials=3", *CHEAP, f"out={out}"], progress=False)
    assert len(result.records) == 3 and not result.resumed
    for name in ("config.yaml", "trials.csv", "best.yaml", "pareto.png", "report.md", "study.journal"):
        assert (out / name).exists(), name
    assert list((out / "pareto").glob("trial-*.yaml"))
    assert (out / "ray" / "session-1").is_dir()  # Ray Tune's own storage, never read back
    study = _load_study(out)  # the Optuna backend's study: optuna-dashboard and load_study read it
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert [t.value for t in study.trials] == [r["reward"] for r in result.records]
    assert [t.params for t in study.trials] == [r["decisions"] for r in result.records]
    assert all(t.user_attrs["spec_hash"] and t.user_attrs["ray_trial_id"] for t in study.trials)
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
    sessions = sorted(p.name for p in (out / "ray").glob("session-*"))
    assert sessions == ["session-1", "session-2"]  # the extra trials ran in a new, warm-started session
    assert [len(t.values) for t in _load_study(out).trials] == [2] * 5  # nsga2: accuracy and cost


@ray_test
def test_identical_architecture_is_trained_once(tmp_path, tiny_space):
    text = tiny_space.read_text().replace("block: [mbconv, separable]", "block: [mbconv]")
    text = text.replace("kernel: [3, 5]", "kernel: [3]").replace("expansion: [3, 6]", "expansion: [3]")
    one = tmp_path / "one.yaml"
    one.write_text(text.replace("channel_scale: [0.75, 1.0, 1.5]", "channel_scale: [1.0]"))
    result = run_search([f"space={one}", "trials=3", *CHEAP, f"out={tmp_path / 'run'}"], progress=False)
    assert [bool(r["cached"]) for r in result.records] == [False, True, True]
    assert len({r["accuracy"] for r in result.records}) == 1


def test_the_searcher_reads_results_as_tune_hands_them(tiny_space):
    """Tune hands a searcher each result flattened ("nas/state"): a completed trial reaches Optuna COMPLETE with
    its reward, an epoch's reward as an intermediate value (read nested, every trial looked stopped)."""
    from ray.tune.utils import flatten_dict

    from nas.search.ray_searcher import make_searcher
    from nas.space import load_space, sample

    searcher = make_searcher(SearchConfig(), functools.partial(sample, load_space(tiny_space)), [], {})
    searcher.suggest("first")
    attrs = {"spec_hash": "abc", "accuracy": 0.8, "seconds": 1.0, "decisions": {}, "curve": [0.6, 0.8]}
    searcher.on_trial_result("first", flatten_dict({"epoch": 1, "reward": 0.9, "nas": {**attrs, "state": "running"}}))
    searcher.on_trial_complete("first", flatten_dict({"accuracy": 0.8, "cost": 1e6, "reward": 1.2, "epoch": 2,
                                                      "nas": {**attrs, "state": "complete"}}))
    trial = searcher._ot_study.trials[0]  # OptunaSearch's study: what its sampler learns from
    assert (trial.state, trial.value, trial.intermediate_values) == (optuna.trial.TrialState.COMPLETE, 1.2, {0: 0.9})
    assert searcher.best == 1.2 and searcher.known["abc"]["accuracy"] == 0.8
    assert searcher.suggest("second")[BEST_KEY] == 1.2  # the next trial may skip what could not beat it


def _accuracy_by_architecture(spec, report=None):
    """An accuracy fixed per architecture, between 0.5 and 0.9."""
    return Evaluation(0.5 + 0.4 * int(spec_hash(spec)[:4], 16) / 0xFFFF, 0.0)


@ray_test
def test_a_candidate_that_cannot_beat_the_best_is_skipped_untrained(tmp_path, tiny_space):
    """The searcher hands each trial the best reward so far; one trial at a time, a trial is skipped exactly when
    its reward at accuracy 1, (FLOPs / 2M)^-1, is below the best of the trials before it."""
    result = run_search([f"space={tiny_space}", "trials=8", "target_flops=2M", "epochs=1", "w=-1", "sampler=random",
                         "backend=ray", "final_top_k=0", f"out={tmp_path / 'run'}"],
                        evaluator=_accuracy_by_architecture, progress=False)
    best, expected = float("-inf"), set()
    for r in sorted(result.records, key=lambda r: r["number"]):
        if (r["flops"] / 2e6) ** -1 < best:
            expected.add(r["number"])
        else:
            assert r["state"] == "complete"
            best = max(best, r["reward"])
    assert expected  # the test proves nothing unless some candidate is hopeless
    assert {r["number"] for r in result.records if r.get("skipped")} == expected
    assert all(r["state"] == "pruned" and r["accuracy"] is None for r in result.records if r["number"] in expected)


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
    handed_on = []  # the backend hands each record on as it is stored (the progress bar's feed)
    ray_backend.search(context(None), tmp_path / "again", handed_on.append)
    assert handed_on == _records(tmp_path / "again") and len(handed_on) == 4
    by_point = {r["decisions"]["candidate"]: r for r in result.records}
    assert sorted(by_point) == [0, 1, 2, 3] and len(result.records) == 4
    assert by_point[0]["state"] == "complete" and by_point[0]["accuracy"] == pytest.approx(0.9)
    stopped = [r for r in result.records if r["state"] == "pruned"]
    # keep75: a rung at each epoch before the last (epochs 1 and 2), so a stopped trial trained fewer than 3
    assert stopped and all("ASHA" in r["note"] and 1 <= len(r["curve"]) < 3 for r in stopped)
    assert result.best["decisions"] == {"candidate": 0}


class _Planted:
    """A pickle that, when loaded, creates the directory ``marker``: what a planted file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@ray_test
def test_killed_driver_resumes_on_two_nodes_without_unpickling(tiny_space, tmp_path, two_nodes):
    """The driver is a `nas search` process on the module's two-node cluster. Killed mid-search, every
    pickle in its run folder replaced by a planted one, it resumes from the study: nothing finished is
    lost or redone, nothing planted runs, and the trials ran on both nodes."""
    out, marker = tmp_path / "run", tmp_path / "planted-pickle-ran"
    cmd = [NAS, "search", f"space={tiny_space}", "trials=6", "target_flops=2M", "epochs=2", "backend=ray",
           "concurrent=2", f"ray_address={two_nodes.address}", f"out={out}", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, before = time.time() + 180, []
    while time.time() < deadline and sum(r["state"] == "complete" for r in before) < 2:
        time.sleep(0.3)
        before = _records(out)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert sum(r["state"] == "complete" for r in before) >= 2, "the search never finished two trials"
    pickles = list(out.rglob("*.pkl"))
    assert pickles  # Tune's tuner.pkl and the searcher's state at least
    for path in pickles:
        path.write_bytes(pickle.dumps(_Planted(str(marker))))
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stdout
    assert not marker.exists(), "a pickle from the run folder was loaded"
    after = _records(out)
    assert [(r["trial_id"], r["accuracy"]) for r in after[:len(before)]] == \
        [(r["trial_id"], r["accuracy"]) for r in before]  # nothing finished was lost or redone
    assert sum(r["state"] in ("complete", "pruned", "failed") for r in after) == 6
    assert len({r["node_id"] for r in after}) == 2  # both nodes ran trials
    assert all(r["worker"].rsplit(":", 1)[1].isdigit() for r in after)  # hostname:pid of the worker
    assert len(_load_study(out).trials) == 6


def _ray_processes(temp_dir: str) -> dict[int, str]:
    """pid -> command line of the processes whose command line names ``temp_dir`` (a Ray session's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if temp_dir in cmdline:
                found[int(entry.name)] = cmdline
    return found


def _gone_within(temp_dir: str, seconds: float) -> dict[int, str]:
    deadline = time.time() + seconds
    left = _ray_processes(temp_dir)
    while left and time.time() < deadline:
        time.sleep(0.5)
        left = _ray_processes(temp_dir)
    for pid in left:  # not to leave them running after a failed test: by pid, these only
        os.kill(pid, signal.SIGKILL)
    return left


def _stranger_connects(gcs_port: int) -> str:
    """What a Ray client without a token gets from the GCS at 127.0.0.1:``gcs_port``: 'refused' or 'connected'."""
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", gcs_port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    probe = ("from ray._raylet import GcsClient\nfrom ray.exceptions import AuthenticationError\n"
             f"try:\n    GcsClient(address='127.0.0.1:{gcs_port}')\n    print('connected')\n"
             "except AuthenticationError:\n    print('refused')")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run([sys.executable, "-c", probe], env=clean, capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or done.stderr[-500:]


@pytest.mark.ray
def test_local_ray_wants_the_runs_token_and_ends_with_the_driver(tiny_space, tmp_path):
    """A local instance (no ray_address): its services refuse a client without the run's token (Ray binds
    them to every interface), and none of its processes outlives the driver, whether it ends normally or
    by SIGTERM."""
    temp_dir = tempfile.mkdtemp(prefix="nasray", dir="/tmp")  # short: Ray's socket paths live below it
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"RAY_TMPDIR": temp_dir}
    out = tmp_path / "run"
    cmd = [NAS, "search", f"space={tiny_space}", "target_flops=2M", "backend=ray", f"out={out}"]
    proc = subprocess.Popen(cmd + ["trials=2", "evaluator=zero_cost:params", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[int, str] = {}
    stranger = None
    while proc.poll() is None:
        seen |= _ray_processes(temp_dir)
        port_files = [p for p in Path(temp_dir).glob("ray/session_*/gcs_server_port_*") if p.read_text().strip()]
        if port_files and stranger is None:
            stranger = _stranger_connects(int(port_files[0].read_text()))
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.read()
    assert stranger == "refused", stranger
    assert any("raylet/raylet" in c for c in seen.values())
    assert not _gone_within(temp_dir, 5), "Ray processes outlived the driver"
    # Tune's own per-trial loggers are off: tensorboardX's exit handler once deadlocked a driver after SIGTERM
    assert not [p.name for p in out.rglob("*") if p.name.startswith("events.out") or p.name == "progress.csv"]

    proc = subprocess.Popen(cmd + ["trials=500", "evaluator=zero_cost:params", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_records(out)) < 3:
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143  # SIGTERM: ray_backend.Terminated carries exit status 143
    assert not _gone_within(temp_dir, 5), "Ray processes outlived a driver stopped by SIGTERM"
    assert 3 <= len(_records(out)) < 500
    shutil.rmtree(temp_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
def test_token_authentication_failure_is_one_line(tiny_space, tmp_path):
    """`ray start --head` with RAY_AUTH_MODE=token, nas without the token: one line naming RAY_AUTH_MODE and
    the token, exit 2, at once (not after Ray's 20 s of retries)."""
    temp_dir, port = tempfile.mkdtemp(prefix="nasauth", dir="/tmp"), _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                             "--include-dashboard=false", "--block", f"--temp-dir={temp_dir}"],
                            env=clean | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0123456789abcdef" * 2},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        started = time.time()
        done = subprocess.run([NAS, "search", f"space={tiny_space}", "trials=1", *CHEAP, f"out={tmp_path / 'run'}",
                               f"ray_address=127.0.0.1:{port}", "--quiet"], env=clean, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "RAY_AUTH_MODE=token" in lines[0] and "RAY_AUTH_TOKEN" in lines[0], done.stderr
        assert time.time() - started < 15
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the services it started
        head.wait(timeout=60)
        _gone_within(temp_dir, 10)
        shutil.rmtree(temp_dir, ignore_errors=True)


@ray_test
def test_nas_scale_grid_on_ray(tmp_path, two_nodes):
    """`nas scale` with backend=ray: the grid's evaluator travels to Ray workers and the family is written."""
    out = tmp_path / "scale"
    done = subprocess.run([str(Path(sys.executable).parent / "nas"), "scale", "--phi", "1", "--base", "efficientnet-b0",
                           "--out", str(out), "max_candidates=2", "dataset=digits", "epochs=1", "backend=ray",
                           f"ray_address={two_nodes.address}", "--quiet"],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader((out / "grid.csv").open()))
    assert len(rows) == 2 and all(r["state"] == "complete" for r in rows)
    assert (out / "efficientnet-b0-phi1.yaml").exists()


@pytest.mark.ray
@pytest.mark.parametrize("other", ["a Ray driver", "an Optuna process"])
def test_a_ray_driver_beside_another_process_on_a_run_is_one_line(tiny_space, tmp_path, other):
    """It would open its own Tune session and run trials the other does not count; refused before Ray starts."""
    from nas.io import held
    from nas.search.run_folder import RUN_LOCK

    out = tmp_path / "run"
    args = [f"space={tiny_space}", "target_flops=2M", "backend=ray", "trials=2", "evaluator=zero_cost:params",
            f"out={out}"]
    prepare_run(args)  # the run the other process made
    with held(out / RUN_LOCK, shared=other == "an Optuna process"):  # ... and works on, as that process holds it
        with pytest.raises(nas.UserError, match="another nas process .backend=ray runs alone"):
            run_search(args, progress=False, say=lambda line: None)
        assert not (out / ray_records.RAY_DIR).exists()  # no Tune session was opened
    assert len(run_search(args, progress=False, say=lambda line: None).records) == 2  # once the other has ended
