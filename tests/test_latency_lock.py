"""The device lock: latency measurements in separate processes take turns, never overlap training, and
trainers still train side by side."""

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from nas.evaluate.device_lock import measuring_on, training_on

ROOT = Path(__file__).resolve().parent.parent

# A worker: `rounds` times, take the lock for `role`, note when it holds it, do the work, note the end.
WORKER = textwrap.dedent("""
    import sys, time
    from nas.evaluate.device_lock import measuring_on, training_on
    from nas.evaluate.latency import measure_latency
    from nas.spec import from_dict
    role, log, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = from_dict({"name": "one", "resolution": 16, "num_classes": 4, "stem": [],
                      "stages": [{"block": "conv", "out_channels": 8, "kernel": 3, "stride": 1}]})
    for _ in range(rounds):
        with (measuring_on if role == "measure" else training_on)("cpu"):
            start = time.time()
            if role == "measure":
                measure_latency(spec, repeats=20)   # takes the same lock again: nested, no deadlock
            time.sleep(0.15)                         # long enough that an overlap could not be missed
            end = time.time()
        with open(log, "a") as fh:
            fh.write(f"{role} {start} {end}\\n")
""")


def _run(roles: list[str], tmp_path: Path, rounds: int = 3) -> list[tuple[str, float, float]]:
    log = tmp_path / "intervals.txt"
    env = {**os.environ, "NAS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, role, str(log), str(rounds)], env=env) for role in roles]
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(role, float(start), float(end)) for role, start, end in rows]


def _overlaps(a, b) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def test_two_processes_measuring_take_turns(tmp_path):
    intervals = _run(["measure", "measure"], tmp_path)
    assert len(intervals) == 6
    pairs = [(a, b) for i, a in enumerate(intervals) for b in intervals[i + 1:]]
    assert not any(_overlaps(a, b) for a, b in pairs)


def test_measuring_never_overlaps_training_and_trainers_share(tmp_path):
    intervals = _run(["train", "train", "measure"], tmp_path, rounds=4)
    measures = [i for i in intervals if i[0] == "measure"]
    trains = [i for i in intervals if i[0] == "train"]
    assert len(measures) == 4 and len(trains) == 8
    assert not any(_overlaps(m, t) for m in measures for t in trains)


def test_trainers_do_not_exclude_each_other(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path))
    inside = threading.Barrier(2, timeout=10)  # both threads must be inside training_on at once

    def train():
        with training_on("cpu"):
            inside.wait()

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not inside.broken


def test_threads_of_one_process_take_turns(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path))
    intervals = []

    def measure():
        with measuring_on("cpu"):
            start = time.time()
            time.sleep(0.1)
            intervals.append(("m", start, time.time()))

    threads = [threading.Thread(target=measure) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(intervals) == 3
    assert not any(_overlaps(a, b) for i, a in enumerate(intervals) for b in intervals[i + 1:])


def test_measuring_from_inside_training_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path))
    with training_on("cpu"), pytest.raises(RuntimeError, match="inside training"), measuring_on("cpu"):
        pass
    with measuring_on("cpu"):  # released: free again
        pass


def test_two_workers_of_one_search_measure_latency_between_trainings(tiny_space, tmp_path, monkeypatch):
    """objective=latency latency=measured with workers=2: while one worker trains, the other's measurement
    waits (the real lock; the wrappers only note when each holds it)."""
    from contextlib import contextmanager

    import nas.evaluate.evaluators as evaluators
    import nas.evaluate.latency as latency
    from nas.search import run_search

    intervals: list[tuple[str, float, float]] = []

    def noted(role, take):
        @contextmanager
        def holding(device):
            with take(device):
                start = time.time()
                try:
                    yield
                finally:
                    intervals.append((role, start, time.time()))
        return holding

    monkeypatch.setattr(evaluators, "training_on", noted("train", evaluators.training_on))
    monkeypatch.setattr(latency, "measuring_on", noted("measure", latency.measuring_on))
    result = run_search([f"space={tiny_space}", "objective=latency", "target=2ms", "latency=measured", "workers=2",
                         "trials=4", "epochs=1", "final_top_k=0", "sampler=random", "skip_hopeless=false",
                         f"out={tmp_path / 'run'}"],
                        progress=False, say=lambda _: None)
    assert sum(r["state"] == "complete" for r in result.records) == 4
    trainings = [i for i in intervals if i[0] == "train"]
    measurements = [i for i in intervals if i[0] == "measure"]
    assert len(trainings) >= 2 and measurements
    assert not any(_overlaps(m, t) for m in measurements for t in trainings)
