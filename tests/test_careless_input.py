"""Careless input on every sub-command (issue 13): each is one line naming what is wrong and what is allowed,
exit status 2, no traceback, and nothing written. Each case here was a traceback (exit 1) or a hang before."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nas
from nas.cli import main
from nas.scale.compound import MAX_GRID_VALUES, grid_candidates

NAS = str(Path(sys.executable).parent / "nas")


@pytest.fixture
def places(tmp_path, tiny_spec_dict, monkeypatch):
    """A folder of careless targets: a file, a folder, settings files holding a YAML list, a small spec."""
    monkeypatch.chdir(tmp_path)
    Path("a_file").write_text("not a folder\n")
    Path("a_folder").mkdir()
    Path("list.yaml").write_text("- space: mnas\n- trials: 3\n")
    Path("list_run").mkdir()  # a run whose config.yaml is a list (hand-edited, or another tool's file)
    Path("list_run/config.yaml").write_text("- a\n- b\n")
    nas.save(nas.spec.from_dict({**tiny_spec_dict, "resolution": 16}), Path("tiny.yaml"))
    shutil.copy("tiny.yaml", "list_run/best.yaml")
    return tmp_path


CASES = [
    # (command line, the start of the one line after "nas: error: ")
    (["search", "space=a_folder"], "space: got 'a_folder', a folder"),
    (["search", "out=a_file"], "out: got 'a_file', a file"),
    (["search", "out=a_file/run"], "out: got 'a_file/run', below the file 'a_file'"),
    (["search", "out=list_run"], "out: list_run/config.yaml holds a YAML list"),
    (["search", "experiment=list.yaml"], "experiment list.yaml: got list"),
    (["search", "train_images=1"], "train_images: got '1'; allowed: an integer >= 2"),
    (["export", "list_run"], "run: list_run/config.yaml holds a YAML list"),
    (["export", "list_run", "-o", "a_file"], "-o: got 'a_file', a file"),
    (["export", "list_run", "-o", "a_file/specs"], "-o: got 'a_file/specs', below the file"),
    (["info", "tiny.yaml", "--resolution", "100000", "--latency"], "latency: needs about"),
    (["info", "tiny.yaml", "--batch", "100000000", "--latency"], "latency: needs about"),
    (["info", "tiny.yaml", "--resolution", "x"], "nas info: argument --resolution: invalid int value"),
    (["scale", "--phi", "1", "--base", "tiny.yaml", "step=1e-9", "--out", "new"], "grid step: got 1e-09"),
    (["scale", "--phi", "1", "--base", "tiny.yaml", "--out", "a_file/family"], "--out: got 'a_file/family', below"),
    (["scale", "--phi", "1", "--base", "list_run", "--out", "new"], "--base: list_run/config.yaml holds a YAML list"),
    (["train", "tiny.yaml", "out=a_file"], "out: got 'a_file', a file"),
    (["train", "tiny.yaml", "resolution=100000", "out=new"], "dataset fashion-mnist at resolution 100000: needs about"),
    (["train", "list_run", "out=new"], "run: list_run/config.yaml holds a YAML list"),
    (["data", "fetch", "cifar10", "--dir", "a_file"], "--dir: got 'a_file', a file"),
    (["latency", "build", "tiny.yaml", "--resolution", "100000"], "latency build of tiny: needs about"),
    (["latency", "build", "--space", "a_folder"], "space: got 'a_folder', a folder"),
    (["weights", "import", "nosuch.pt", "tiny.yaml", "-o", "a_folder"], "-o: got 'a_folder', a folder"),
    (["weights", "import", "nosuch.pt", "tiny.yaml", "-o", "a_file/w.pt"], "-o: got 'a_file/w.pt', below the file"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(args) for args, _ in CASES])
def test_careless_input_is_one_line_and_status_2(places, capsys, args, message):
    before = sorted(p.name for p in places.rglob("*"))
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith(f"nas: error: {message}"), captured.err
    assert "allowed" in captured.err or "invalid" in captured.err
    assert sorted(p.name for p in places.rglob("*")) == before  # nothing written


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("args", [["search", "out=/proc/nas-run"], ["scale", "--phi", "1", "--base", "tiny.yaml",
                                                                     "--out", "/proc/nas-family"],
                                  ["export", "list_run", "-o", "/proc/nas-specs"]], ids=["search", "scale", "export"])
def test_a_folder_the_system_will_not_make_is_one_line(places, capsys, args):
    """/proc lets root pass os.access and then refuses the mkdir (ENOENT): that was a traceback."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "cannot" in err and "'/proc'" in err and "allowed" in err


def test_a_grid_step_that_would_never_finish_is_refused_at_once():
    with pytest.raises(nas.UserError, match=f"at most {MAX_GRID_VALUES} values"):
        grid_candidates(1e-9)
    assert len(grid_candidates(0.3 / (MAX_GRID_VALUES - 1))) > 0  # the finest allowed grid still runs


def _without_root_privilege() -> list[str]:
    """As root, file modes are not enforced: drop the capabilities that bypass them, as for any other user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: read-only files cannot be made read-only for this process")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("read_only", ["trials.csv", "."], ids=["trials.csv", "the run folder"])
def test_a_read_only_run_is_one_line_naming_the_file(tmp_path, read_only):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"trials": 3, "epochs": 1, "target_flops": "2M"}))
    (run / "trials.csv").write_text("number,state\n")
    (run / read_only).chmod(0o555 if read_only == "." else 0o444)
    try:
        done = subprocess.run([*_without_root_privilege(), NAS, "search", f"out={run}"], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120)
    finally:
        (run / read_only).chmod(0o755 if read_only == "." else 0o644)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    named = f"'{run / 'trials.csv'}' is read-only" if read_only == "trials.csv" else f"cannot write in '{run}'"
    assert named in done.stderr and "allowed" in done.stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "trials.csv"]


def test_an_os_refusal_the_checks_did_not_foresee_is_one_line(tiny_space, tmp_path):
    """The last resort in main(): the up-front checks look at the run folder and its files, not into its
    sub-folders; a read-only pareto/ fails when the outputs are written, as one line naming the path."""
    run = tmp_path / "run"
    (run / "pareto").mkdir(parents=True)
    settings = {"space": str(tiny_space), "objective": "flops", "trials": 1, "epochs": 1, "target_flops": "2M"}
    (run / "config.yaml").write_text(yaml.safe_dump(settings))
    (run / "pareto").chmod(0o555)
    try:
        done = subprocess.run([*_without_root_privilege(), NAS, "search", f"out={run}", "--quiet"],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
    finally:
        (run / "pareto").chmod(0o755)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"nas: error: {run / 'pareto'}/") and len(done.stderr.splitlines()) == 1
    assert "Permission denied; allowed: a path you may read and write" in done.stderr


def test_other_os_errors_keep_their_traceback(monkeypatch):
    """Only refusals about a user's path become one line: an OSError from a bug in nas is not hidden."""
    import nas.search.export as export_module

    def bug(*_):
        raise FileNotFoundError(2, "No such file or directory", "/nas/internal/file")

    monkeypatch.setattr(export_module, "export", bug)
    with pytest.raises(FileNotFoundError):
        main(["export", "run"])
