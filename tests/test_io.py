"""nas.io: a kill -9 mid-write leaves a temp file beside the target, never half a target; the next run on the
folder removes such leftovers of dead writers and keeps a live writer's."""

import os
import socket
import subprocess
import sys

from nas.io import remove_stale_temporaries, write_text
from nas.search import run_search


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp_of(folder, writer_pid: int, target: str = "best.yaml"):
    host = socket.gethostname().replace(".", "_")
    path = folder / f".{target}.{host}-{writer_pid}.x1y2z3.tmp"
    path.write_text("half of a fi")
    return path


def test_a_dead_writers_temp_file_is_removed_and_a_live_ones_kept(tmp_path):
    (tmp_path / "sub").mkdir()
    dead = _temp_of(tmp_path / "sub", _dead_pid())
    live = _temp_of(tmp_path, os.getpid())
    elsewhere = tmp_path / ".best.yaml.otherhost-1.x1y2z3.tmp"
    elsewhere.write_text("another host's")
    write_text(tmp_path / "kept.yaml", "whole\n")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and elsewhere.exists() and (tmp_path / "kept.yaml").read_text() == "whole\n"
    assert not remove_stale_temporaries(tmp_path / "sub")


def test_a_resumed_search_clears_what_a_killed_writer_left(tiny_space, tmp_path):
    out = tmp_path / "run"
    args = [f"space={tiny_space}", "target_flops=2M", "epochs=1", "final_top_k=0", "evaluator=zero_cost:params",
            f"out={out}"]
    run_search([*args, "trials=1"], progress=False, say=lambda _: None)
    leftover = _temp_of(out, _dead_pid())
    run_search([*args, "trials=2"], progress=False, say=lambda _: None)
    assert not leftover.exists() and not list(out.glob(".*.tmp"))
