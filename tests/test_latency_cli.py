"""`nas latency build` and `nas info --latency`: what a user types, what they read, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_build_then_info_prints_measured_and_predicted(capsys, cache):
    assert main(["latency", "build", "lcnet-x0.25", "--resolution", "32", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "1 threads" in out and "entries" in out and "overhead" in out
    tables = list((cache / "latency-tables").glob("*.json"))
    assert len(tables) == 1
    assert main(["info", "lcnet-x0.25", "--latency", "--resolution", "32", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["latency_ms"] > 0 and info["latency_predicted_ms"] > 0 and info["latency_threads"] == 1
    assert main(["info", "lcnet-x0.25", "--latency", "--resolution", "32"]) == 0
    text = capsys.readouterr().out
    assert "1 thread (thread CPU time);" in text and "predicted latency:" in text


@pytest.mark.parametrize("argv, message", [
    (["latency", "build"], "allowed: --space NAME or one or more specs"),
    (["latency", "build", "--space", "mnas", "lcnet-x1.0"], "allowed: one of them"),
    (["latency", "build", "--space", "mnsa"], "did you mean 'mnas'"),
    (["latency", "build", "lcnet-x1.0", "--threads", "0"], "threads: got 0"),
    (["latency", "build", "lcnet-x1.0", "--device", "gpu"], "allowed: cpu, cuda, cuda:N"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_build_piped_writes_no_bar_frames(cache):
    """The progress bar is for a terminal (issue 13): piped to a file, no \\r frames, and the table's path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "nas.cli", "latency", "build", "lcnet-x0.25", "--resolution", "32"],
                          check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr + done.stdout
    assert "latency-tables" in done.stdout
