"""The conventions of the `nas` command (issue 13): `nas --version`, `python -m nas`, `--help` naming every
key, one plain line per trial when output goes to a file, every file written 0644; and the wheel's
package list (tests/wheel_check.sh, run by `make test`, installs the wheel and runs it)."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import nas
from nas.cli import main
from nas.settings import GRID_KEYS, KEYS
from nas.shipped import shipped_folder

NAS = str(Path(sys.executable).parent / "nas")
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [[NAS], [sys.executable, "-m", "nas"]], ids=["nas", "python -m nas"])
def test_version_and_usage_from_both_entry_points(command, tmp_path):
    done = subprocess.run([*command, "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stdout == f"nas {nas.__version__}\n" and done.stderr == ""
    assert re.fullmatch(r"\d+\.\d+\.\d+", nas.__version__)
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "command" in done.stderr


@pytest.mark.parametrize("argv, pairs", [
    (["search", "trials=8", "--quiet", "epochs=2"], ["trials=8", "epochs=2"]),
    (["search", "--quiet", "space=essp"], ["space=essp"]),
    (["scale", "--phi", "1..3", "step=0.1", "--quiet", "epochs=2"], ["step=0.1", "epochs=2"]),
    (["train", "efficientnet-b0", "--quiet", "epochs=2"], ["epochs=2"]),
])
def test_key_value_pairs_may_follow_an_option(argv, pairs):
    from nas.cli import parse_arguments

    args = parse_arguments(argv)
    assert args.pairs == pairs and args.quiet


def test_what_is_neither_an_option_nor_a_pair_is_one_line(capsys):
    assert main(["search", "trials=8", "--quiet", "--qiuet"]) == 2
    assert capsys.readouterr().err == "nas: error: unrecognized arguments: --qiuet\n"
    assert main(["info", "efficientnet-b0", "epochs=2"]) == 2  # info takes no key=value
    assert "unrecognized arguments: epochs=2" in capsys.readouterr().err


@pytest.mark.parametrize("command, keys", [(["search"], KEYS), (["scale"], GRID_KEYS)])
def test_help_names_every_key_with_its_default_and_meaning(command, keys, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "see README" not in shown
    for name, key in keys.items():
        assert f"  {name}={key.shown_default}\n" in shown, name
        assert key.meaning.split(";")[0][:40] in " ".join(shown.split()), name


def _run_to_files(args: list[str], cwd: Path, name: str) -> tuple[str, str]:
    """``nas ARGS > name.out 2> name.err`` with umask 077, so a file not written through nas.io shows as 0600."""
    with open(cwd / f"{name}.out", "w") as out, open(cwd / f"{name}.err", "w") as err:
        done = subprocess.run([NAS, *args], stdout=out, stderr=err, cwd=cwd, timeout=600,
                              preexec_fn=lambda: os.umask(0o077))
    stdout, stderr = (cwd / f"{name}.out").read_text(), (cwd / f"{name}.err").read_text()
    assert done.returncode == 0, stderr
    return stdout, stderr


def _modes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.rglob("*") if p.is_file()}


def test_piped_search_and_scale_print_plain_lines_and_write_0644_files(tiny_space, tmp_path):
    stdout, stderr = _run_to_files(["search", f"space={tiny_space}", "trials=2", "target_flops=2M", "epochs=1",
                                    "out=run"], tmp_path, "search")
    assert "\r" not in stdout + stderr  # no progress-bar frames in a log file
    trial_lines = [line for line in stdout.splitlines() if line.startswith("trial ")]
    assert [line.split(":")[0] for line in trial_lines] == ["trial 0 (1/2)", "trial 1 (2/2)"]
    assert all("best reward" in line for line in trial_lines)

    stdout, stderr = _run_to_files(["scale", "--phi", "1..2", "--base", "run", "--out", "family", "max_candidates=2",
                                    "epochs=1"], tmp_path, "scale")
    assert "\r" not in stdout + stderr
    assert sum(line.startswith("trial ") for line in stdout.splitlines()) == 2  # the grid's two candidates
    _run_to_files(["export", "run", "--pareto", "-o", "exported"], tmp_path, "export")

    written = {f"{folder}/{name}": mode for folder in ("run", "family", "exported")
               for name, mode in _modes(tmp_path / folder).items()}
    assert {"run/study.journal", "run/pareto.png", "run/trials.csv", "family/family.png", "family/grid.png",
            "family/grid/study.journal", "exported/run-trial0.yaml"} <= set(written)
    assert {name: mode for name, mode in written.items() if mode != "0o644"} == {}


def test_the_wheel_lists_every_package_and_ships_the_spaces_and_experiments():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "nas").rglob("__init__.py")}
    data_only = {"nas.zoo", "nas.search_spaces", "nas.experiments"}
    assert set(setuptools["packages"]) == on_disk | data_only
    assert setuptools["package-dir"] == {"nas.search_spaces": "search_spaces", "nas.experiments": "experiments"}
    # in a checkout the top-level folders are the ones read (tests/wheel_check.sh covers the installed wheel)
    assert shipped_folder("search_spaces") == ROOT / "search_spaces"
    assert shipped_folder("experiments") == ROOT / "experiments"
