"""A run people can trust (issue 13): interrupts put the running trial back, a torn journal is set aside,
mistakes that would fail every trial stop before the first, processes share a run exactly, and a folder
of another kind or with other settings is refused. Real processes, real Optuna journals, real data."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

import nas
from nas.cli import main
from nas.errors import SpecError
from nas.evaluate.evaluators import Evaluation
from nas.search import optuna_backend, run_search
from nas.search.config import SearchConfig
from nas.search.journal_repair import torn_tail_start
from nas.search.run import build_context
from nas.spec import from_dict

NAS = str(Path(sys.executable).parent / "nas")
# the search alone (the final stage: test_final.py), every candidate trained (skipping: test_search.py)
CHEAP = ["target_flops=2M", "epochs=1", "final_top_k=0", "skip_hopeless=false"]
COUNTED = ("complete", "pruned", "failed")


def records(run_dir):
    return optuna_backend.records(Path(run_dir), SearchConfig())


def quick(spec, report=None):
    return Evaluation(0.5, 0.0)


def failing_with(key, value, allowed):
    """An evaluator that fails every trial for a configuration error (a SpecError naming ``key``)."""
    def evaluate(spec, report=None):
        raise SpecError(key, value, allowed)
    return evaluate


def one_architecture_space(tiny_space, folder):
    """The tiny space with every choice fixed but one value: each trial proposes the same architecture."""
    text = tiny_space.read_text().replace("block: [mbconv, separable]", "block: [mbconv]")
    text = text.replace("kernel: [3, 5]", "kernel: [3]").replace("expansion: [3, 6]", "expansion: [3]")
    one = folder / "one.yaml"
    one.write_text(text.replace("channel_scale: [0.75, 1.0, 1.5]", "channel_scale: [1.0]"))
    return one


def wait_for(predicate, seconds=120.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def one_running_after_one_complete(out: Path) -> bool:
    """A trial has finished and the next one is being evaluated (proposed, costed, training)."""
    if not (out / optuna_backend.STORAGE_FILE).exists():
        return False
    found = records(out)
    return (any(r["state"] == "complete" for r in found)
            and any(r["state"] == "running" and r.get("cost") is not None for r in found))


# ---------------------------------------------------------------------------------------------
# Interrupts
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_trial_queues_it_again_and_resume_runs_it(tiny_space, tmp_path, signum, status):
    out = tmp_path / "run"
    cmd = [NAS, "search", f"space={tiny_space}", "trials=3", "target_flops=2M", "epochs=6", "skip_hopeless=false",
           f"out={out}", "--quiet"]  # every trial trains: one is running when the signal comes
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: one_running_after_one_complete(out)), "no trial was running after a finished one"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr
    stopped = {r["number"]: r for r in records(out)}
    interrupted = [r for r in stopped.values() if r["state"] == "interrupted"]
    assert interrupted and not any(r["state"] in ("failed", "running") for r in stopped.values())
    assert (out / "trials.csv").exists() and (out / "report.md").exists()  # outputs written on the way out

    result = run_search([f"out={out}"], evaluator=quick, progress=False, say=lambda _: None)
    counted = [r for r in result.records if r["state"] in COUNTED]
    assert len(counted) == 3
    rerun = [r["decisions"] for r in result.records
             if r["state"] == "complete" and stopped.get(r["number"], {}).get("state") != "complete"]
    assert all(r["decisions"] in rerun for r in interrupted)  # the interrupted candidates ran after the resume


def test_a_signal_stops_the_scale_grid_and_resume_finishes_it(tmp_path, tiny_spec_dict):
    base = tmp_path / "tiny.yaml"
    nas.save(from_dict({**tiny_spec_dict, "resolution": 16}), base)
    out = tmp_path / "scaled"
    cmd = [NAS, "scale", "--phi", "1", "--base", str(base), "--out", str(out), "max_candidates=3", "dataset=digits",
           "epochs=6", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: one_running_after_one_complete(out / "grid")), "the grid never got going"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not any(r["state"] == "failed" for r in records(out / "grid"))

    from nas import scale_run
    from nas.scale_run import ScaleRequest

    result = scale_run.run_scale(ScaleRequest("1", out=str(out)), evaluator=quick, progress=False, say=lambda _: None)
    assert [r["state"] for r in result.grid] == ["complete"] * 3


# ---------------------------------------------------------------------------------------------
# Torn journals
# ---------------------------------------------------------------------------------------------

def test_torn_tail_is_found_wherever_the_last_record_is_cut():
    whole = b'{"a": 1}\n{"b": 2}\n'
    assert torn_tail_start(whole) is None and torn_tail_start(b"") is None
    for cut in range(len(b'{"a": 1}\n') + 1, len(whole)):
        assert torn_tail_start(whole[:cut]) == len(b'{"a": 1}\n')


def test_a_journal_cut_at_every_byte_of_its_last_record_resumes(tiny_space, tmp_path, capsys):
    """Cut the journal inside its last record at every byte; each time the resume sets the cut record aside (one
    warning, a backup beside the journal), loses nothing finished before it, and its appends read back."""
    first = tmp_path / "first"
    args = [f"space={tiny_space}", *CHEAP, "sampler=random"]
    run_search(args + ["trials=2", f"out={first}"], evaluator=quick, progress=False)
    data = (first / optuna_backend.STORAGE_FILE).read_bytes()
    last = data.rfind(b"\n", 0, len(data) - 1) + 1
    finished = records(first)[0]
    config, _ = nas.search.resolve_config(args + ["trials=3"])
    ctx = build_context(config, quick)
    capsys.readouterr()
    # In memory where there is a tmpfs: each resume appends ~30 records, each fsync'ed (a second per 10 on disk).
    scratch = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp_path))
    try:
        check_every_cut(data, last, finished, config, ctx, scratch, capsys)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_every_cut(data, last, finished, config, ctx, scratch, capsys):
    for cut in range(last + 1, len(data)):
        run_dir = scratch / f"cut{cut}"
        run_dir.mkdir()
        (run_dir / optuna_backend.STORAGE_FILE).write_bytes(data[:cut])
        optuna_backend.recover_interrupted(run_dir, config)
        optuna_backend.search(ctx, run_dir, lambda record: None)
        assert capsys.readouterr().err.count("set aside") == 1
        assert [p.read_bytes() for p in run_dir.glob("study.journal.torn-*")] == [data[last:cut]]
        lines = (run_dir / optuna_backend.STORAGE_FILE).read_bytes().splitlines()
        assert all(json.loads(line) for line in lines)  # the appends after the cut parse
        found = records(run_dir)
        assert found[0] == finished  # the trial finished before the cut record is intact
        assert sum(r["state"] in COUNTED for r in found) == 3


def test_a_record_being_appended_by_another_process_is_waited_for_not_set_aside(tmp_path, capsys):
    """A process joining a shared run checks the journal's tail while another is mid-append: the check takes
    the lock Optuna's appends hold, so it sees the whole record, not a cut one."""
    from optuna.storages.journal import JournalFileSymlinkLock

    journal = tmp_path / optuna_backend.STORAGE_FILE
    journal.write_bytes(b'{"op_code": 0}\n{"op_code": 1, "half": ')  # an append under way
    writer_lock = JournalFileSymlinkLock(str(journal))
    writer_lock.acquire()
    repair = threading.Thread(target=optuna_backend.repair_journal, args=(journal,))
    repair.start()
    time.sleep(0.5)
    assert repair.is_alive()  # waiting for the writer
    with open(journal, "ab") as f:
        f.write(b'"rest"}\n')
    writer_lock.release()
    repair.join(timeout=30)
    assert not repair.is_alive()
    assert journal.read_bytes().endswith(b'"half": "rest"}\n')
    assert not list(tmp_path.glob("*.torn-*")) and "set aside" not in capsys.readouterr().err


def test_resume_sets_a_torn_record_aside_with_one_warning(tiny_space, tmp_path, capsys):
    out = tmp_path / "run"
    args = [f"space={tiny_space}", *CHEAP, "evaluator=zero_cost:params", f"out={out}"]
    run_search(args + ["trials=2"], progress=False)
    journal = out / optuna_backend.STORAGE_FILE
    journal.write_bytes(journal.read_bytes()[:-7])
    capsys.readouterr()
    result = run_search(args + ["trials=3"], progress=False, say=lambda _: None)
    assert sum(r["state"] in COUNTED for r in result.records) == 3
    assert capsys.readouterr().err.count("warning") == 1
    assert len(list(out.glob("study.journal.torn-*"))) == 1


# ---------------------------------------------------------------------------------------------
# Fail fast
# ---------------------------------------------------------------------------------------------

def test_cuda_without_a_gpu_stops_before_anything_runs(tiny_space, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert main(["search", f"space={tiny_space}", "device=cuda", f"out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device" in err[0] and "cpu" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_space_that_vanishes_at_the_proxy_resolution_stops_before_anything_runs(tmp_path, capsys):
    # VoVNet's stride-4 stem and max-pools: an 8 px image vanishes in every candidate
    assert main(["search", "space=osa", "dataset=digits", "resolution=8", f"out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "8 px" in err[0] and "vanishes" in err[0]
    assert not (tmp_path / "run").exists()


def test_every_trial_failing_is_an_error_and_a_corrected_resume_reruns_them(tiny_space, tmp_path):
    out = tmp_path / "run"
    args = [f"space={tiny_space}", *CHEAP, "trials=3", f"out={out}"]

    with pytest.raises(nas.UserError, match="every trial failed.*resolution: got 2"):
        run_search(args, evaluator=failing_with("resolution", 2, "a larger image"), progress=False)
    assert [r["state"] for r in records(out)] == ["failed"] * 3
    result = run_search(args, evaluator=quick, progress=False, say=lambda _: None)
    assert sum(r["state"] == "complete" for r in result.records) == 3  # not counted as done: run again
    assert result.best is not None


def test_a_run_whose_every_trial_failed_resumes_with_corrected_settings(tiny_space, tmp_path):
    out = tmp_path / "run"
    base = [f"space={tiny_space}", *CHEAP, "trials=2", f"out={out}"]

    with pytest.raises(nas.UserError, match="every trial failed"):
        run_search([*base, "lr=5"], evaluator=failing_with("lr", 5.0, "a learning rate that does not diverge"),
                   progress=False)
    # nothing was scored under lr=5, so the corrected setting is taken and the failed trials run again
    result = run_search([*base, "lr=0.01"], evaluator=quick, progress=False, say=lambda _: None)
    assert sum(r["state"] == "complete" for r in result.records) == 2
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] == 0.01
    # once a trial is scored, the settings are the run's: another lr would mix two scorings
    with pytest.raises(nas.UserError, match=r"other settings \(lr 0.01 -> 0.02\)"):
        run_search([*base, "lr=0.02"], evaluator=quick, progress=False)


def test_a_latency_run_keeps_its_thread_count_and_reports_it(tiny_space, tmp_path):
    out = tmp_path / "run"
    args = [f"space={tiny_space}", *CHEAP, "objective=latency", "target=2ms", "trials=1", f"out={out}"]
    run_search(args, evaluator=quick, progress=False, say=lambda _: None)
    assert "latency: predicted from the per-device latency table, on cpu with 1 torch thread(s)" in \
        (out / "report.md").read_text()
    with pytest.raises(nas.UserError, match="latency_threads 1 -> 2"):  # costs timed two ways would mix
        run_search([*args, "latency_threads=2"], evaluator=quick, progress=False)


def test_a_run_with_no_scored_trial_still_keeps_its_space(tiny_space, tmp_path):
    out = tmp_path / "run"

    with pytest.raises(nas.UserError, match="every trial failed"):
        run_search([f"space={tiny_space}", *CHEAP, "trials=1", f"out={out}"],
                   evaluator=failing_with("resolution", 2, "a larger image"), progress=False)
    with pytest.raises(nas.UserError, match="space"):
        run_search(["space=mnas", *CHEAP, "trials=1", f"out={out}"], evaluator=quick, progress=False)


# ---------------------------------------------------------------------------------------------
# Shared runs
# ---------------------------------------------------------------------------------------------

def test_a_run_another_process_makes_while_this_one_prepares_is_joined_not_replaced(tiny_space, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from nas.io import _WRITER as this_writer
    from nas.io import TEMP_SUFFIX, updating
    from nas.search.run import prepare_run

    base = [f"space={tiny_space}", *CHEAP, "trials=1"]
    made = tmp_path / "made"
    run_search([*base, f"out={made}"], evaluator=quick, progress=False, say=lambda _: None)
    out = tmp_path / "run"
    out.mkdir()
    # what the other process holds while it makes the run: the lock and config.yaml's temp file (a live writer's)
    (out / f".config.yaml.{this_writer}.abc{TEMP_SUFFIX}").write_text("space: half")
    with ThreadPoolExecutor(1) as pool:
        with updating(out / "config.yaml"):
            joining = pool.submit(prepare_run, [*base, "lr=0.02", f"out={out}"])  # not refused as a foreign folder
            time.sleep(1.0)
            assert not joining.done(), joining.exception()  # it waits for the run being made
            shutil.copytree(made, out, dirs_exist_ok=True)  # ... which then exists, with a scored trial
        # it joined the run as a resume, so the other lr is refused instead of replacing the run's config.yaml
        with pytest.raises(nas.UserError, match=r"other settings \(lr .* -> 0.02\)"):
            joining.result(timeout=60)
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] != 0.02


def test_two_processes_on_one_run_finish_exactly_the_trials(tiny_space, tmp_path):
    out = tmp_path / "run"
    cmd = [NAS, "search", f"space={tiny_space}", "trials=4", *CHEAP, "sampler=random", f"out={out}", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    found = records(out)
    assert len(found) == 4 and all(r["state"] == "complete" for r in found)
    study = optuna_backend.open_study(out, SearchConfig())
    seeds = {t.user_attrs["sampler_seed"] for t in study.trials}
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(seeds) == len(workers)  # each process proposed with its own seed


def test_an_optuna_process_on_a_run_a_ray_driver_works_on_is_one_line(tiny_space, tmp_path):
    """A Ray driver records trials only once finished and counts only its own: an Optuna process beside it would
    run trials past trials= and pick finalists from part of the run. (Two Optuna processes share a run: above.)"""
    from nas.io import held
    from nas.search.run_folder import RUN_LOCK

    out = tmp_path / "run"
    base = [NAS, "search", f"space={tiny_space}", *CHEAP, f"out={out}", "--quiet"]
    cmd = [*base, "trials=2"]
    assert subprocess.run([*base, "trials=1"], capture_output=True, timeout=240).returncode == 0
    with held(out / RUN_LOCK):  # what a Ray driver holds while it works on the run
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "with backend=ray, which runs alone" in done.stderr and "Traceback" not in done.stderr
    assert len(records(out)) == 1  # nothing ran
    assert subprocess.run(cmd, capture_output=True, timeout=240).returncode == 0  # once the driver has ended
    assert len(records(out)) == 2


def test_an_architecture_being_trained_is_not_trained_again_at_once(tmp_path, tiny_space):
    one = one_architecture_space(tiny_space, tmp_path)
    calls = []

    def slow(spec, report=None):
        calls.append(threading.current_thread().name)
        time.sleep(1.0)
        return Evaluation(0.5, 1.0)

    result = run_search([f"space={one}", "trials=3", *CHEAP, "workers=3", f"out={tmp_path / 'run'}"],
                        evaluator=slow, progress=False)
    assert len(calls) == 1
    assert sum(bool(r.get("cached")) for r in result.records) == 2


def test_two_processes_on_one_run_train_one_architecture_once(tmp_path, tiny_space):
    """A space of one architecture, two `nas search` processes on one out=: the later trial (whichever process
    claimed it) waits for the earlier one's training and takes its result instead of training it again."""
    one = one_architecture_space(tiny_space, tmp_path)
    out = tmp_path / "run"
    cmd = [NAS, "search", f"space={one}", "trials=2", *CHEAP, f"out={out}", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    found = records(out)
    assert [r["state"] for r in found] == ["complete", "complete"]
    assert len({r["spec_hash"] for r in found}) == 1
    assert sorted(bool(r.get("cached")) for r in found) == [False, True]  # trained once, reused once


# ---------------------------------------------------------------------------------------------
# Run folders
# ---------------------------------------------------------------------------------------------

def test_resume_with_other_objective_settings_is_refused_in_one_line(tiny_space, tmp_path, capsys):
    out = tmp_path / "run"
    run_search([f"space={tiny_space}", *CHEAP, "trials=1", f"out={out}"], evaluator=quick, progress=False)
    before = (out / "config.yaml").read_text()
    assert main(["search", f"out={out}", "w=-0.5", "epochs=3", "trials=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "w -0.7 -> -0.5" in err[0] and "epochs 1 -> 3" in err[0] and "new out=" in err[0]
    assert (out / "config.yaml").read_text() == before
    more = run_search([f"out={out}", "trials=2", "workers=2"], evaluator=quick, progress=False, say=lambda _: None)
    assert len(more.records) == 2  # what does not change the reward may change


def test_resume_after_the_space_changed_its_proxy_side_is_refused(tiny_space, tmp_path, capsys):
    out = tmp_path / "run"
    run_search([f"space={tiny_space}", *CHEAP, "trials=1", f"out={out}"], evaluator=quick, progress=False)
    assert yaml.safe_load((out / "config.yaml").read_text())["proxy_resolution"] == 8  # digits' own side
    # The same settings after a newer nas made the space train at 16 px: its scored trials saw 8 px.
    tiny_space.write_text(tiny_space.read_text() + "proxy_resolution: 16\n")
    before = (out / "config.yaml").read_text()
    assert main(["search", f"out={out}", "trials=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "proxy side 8 px -> 16 px (resolution=8 keeps it)" in err[0]
    assert (out / "config.yaml").read_text() == before
    more = run_search([f"out={out}", "trials=2", "resolution=8"], evaluator=quick, progress=False, say=lambda _: None)
    assert len(more.records) == 2  # resolution=8 is the side the run had


def test_a_run_made_before_sides_were_stored_resumes_only_with_its_side_named(tiny_space, tmp_path, capsys):
    out = tmp_path / "run"
    run_search([f"space={tiny_space}", *CHEAP, "trials=1", f"out={out}"], evaluator=quick, progress=False)
    stored = yaml.safe_load((out / "config.yaml").read_text())
    del stored["proxy_resolution"]  # as an earlier nas wrote it
    (out / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    # ... and the space has since declared a larger side: which one its scored trial saw is unknown.
    tiny_space.write_text(tiny_space.read_text() + "proxy_resolution: 16\n")
    before = (out / "config.yaml").read_text()
    assert main(["search", f"out={out}", "trials=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "earlier nas" in err[0] and "now trains at 16 px" in err[0] and "(8 unless" in err[0]
    assert (out / "config.yaml").read_text() == before
    more = run_search([f"out={out}", "trials=2", "resolution=8"], evaluator=quick, progress=False, say=lambda _: None)
    assert len(more.records) == 2
    assert yaml.safe_load((out / "config.yaml").read_text())["proxy_resolution"] == 8  # recorded from now on


def test_a_grid_folder_or_a_foreign_folder_is_refused(tmp_path, capsys):
    grid = tmp_path / "scaled" / "grid"
    grid.mkdir(parents=True)
    (grid / "config.yaml").write_text(yaml.safe_dump(SearchConfig().to_dict()))
    (grid / "grid.yaml").write_text("candidates: []\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("model: resnet\n")
    (foreign / "notes.txt").write_text("mine\n")
    for folder, words in ((grid, "nas scale"), (foreign, "not the settings of a nas search")):
        assert main(["search", "space=mnas", f"out={folder}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0]
    assert (foreign / "config.yaml").read_text() == "model: resnet\n"


def test_w_above_zero_is_refused(tmp_path, capsys):
    assert main(["search", "w=0.5", f"out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "w: got '0.5'" in err and "[-10, 0]" in err


def test_no_run_leaves_its_signal_handlers_behind(tiny_space, tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run_search([f"space={tiny_space}", *CHEAP, "trials=1", f"out={tmp_path / 'run'}"], evaluator=quick, progress=False)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_grid_resumed_with_other_evaluation_settings_is_refused(tmp_path, tiny_spec_dict):
    from nas import scale_run
    from nas.scale_run import ScaleRequest

    base = tmp_path / "tiny.yaml"
    nas.save(from_dict({**tiny_spec_dict, "resolution": 16}), base)
    out = tmp_path / "scaled"
    scale_run.run_scale(ScaleRequest("1", base=str(base), out=str(out), pairs=("max_candidates=2", "epochs=1")),
                        evaluator=quick, progress=False, say=lambda _: None)
    with pytest.raises(nas.UserError, match=r"other settings \(epochs 1 -> 2\).*new out="):
        scale_run.run_scale(ScaleRequest("1", out=str(out), pairs=("epochs=2",)), evaluator=quick, progress=False,
                            say=lambda _: None)
