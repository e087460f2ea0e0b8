"""`nas scale`: the grid through the search backend, the family files, resuming a killed grid, the command."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import yaml

import nas
from nas import scale, scale_run
from nas.cli import main
from nas.cost import count_cost
from nas.evaluate.evaluators import Evaluation
from nas.scale_run import ScaleRequest
from nas.scaled_resolution import ScaledResolutionEvaluator, as_built
from nas.search import optuna_backend
from nas.search.config import SearchConfig
from nas.spec import from_dict, replace, spec_hash

NAS = Path(sys.executable).parent / "nas"
PUBLISHED_PARAMS = {1: 7794184, 2: 9109994, 3: 12233232, 4: 19341616, 5: 30389784, 6: 43040704, 7: 66347960}


@pytest.fixture
def tiny_path(tmp_path, tiny_spec_dict):
    """A 16-pixel spec: small enough that whole grids run in seconds."""
    path = tmp_path / "tiny.yaml"
    nas.save(from_dict({**tiny_spec_dict, "resolution": 16}), path)
    return path


def params_as_accuracy(spec, report=None):
    """A stand-in evaluator: deterministic, instant, and it prefers bigger models."""
    return Evaluation(score=count_cost(spec).params / 1e6, seconds=0.01)


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def grid_records(out):
    return optuna_backend.records(Path(out) / scale_run.GRID_DIR, SearchConfig())


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------

def test_grid_writes_the_family_and_its_results(tmp_path, tiny_path):
    """The real evaluator path (zero_cost:flops, so no training): every candidate is measured at phi = 1 at its
    own scaled proxy resolution, the most "accurate" wins, and every output is there."""
    out = tmp_path / "out"
    request = ScaleRequest("1..3", base=str(tiny_path), out=str(out),
                           pairs=("max_candidates=3", "evaluator=zero_cost:flops", "resolution=16"))
    result = scale_run.run_scale(request, progress=False, say=lambda _: None)
    base = nas.load(tiny_path)
    candidates = scale.grid_candidates(max_candidates=3)
    assert result.method == "grid" and not result.resumed

    grid = read_csv(out / "grid.csv")
    assert [(float(r["alpha"]), float(r["beta"]), float(r["gamma"])) for r in grid] == candidates
    for row, (alpha, beta, gamma) in zip(grid, candidates):
        assert row["state"] == "complete"
        scaled = scale.scale_spec(base, alpha, beta, gamma, 1)
        assert int(row["flops_multiply_adds"]) == count_cost(scaled).flops  # the full spec's FLOPs
        assert float(row["flops_ratio"]) == pytest.approx(count_cost(scaled).flops / count_cost(base).flops, rel=1e-3)
        # the proxy ran at 16 pixels times the candidate's resolution growth, digits' 10 classes
        side = round(16 * scaled.resolution / base.resolution)
        proxy = replace(scaled, resolution=side, num_classes=10)
        assert float(row["accuracy"]) == count_cost(proxy).flops
    best = max(grid, key=lambda r: float(r["accuracy"]))
    assert result.coefficients == (float(best["alpha"]), float(best["beta"]), float(best["gamma"]))

    names = {p.name for p in out.iterdir()}
    assert names == {"grid", "grid.csv", "grid.png", "family.csv", "family.png",
                     "tiny-phi1.yaml", "tiny-phi2.yaml", "tiny-phi3.yaml"}
    assert {"config.yaml", "study.journal", "trials.csv", "grid.yaml", "base.yaml"} <= {
        p.name for p in (out / "grid").iterdir()}
    config = yaml.safe_load((out / "grid" / "config.yaml").read_text())
    assert config["reward"] == "accuracy" and config["trials"] == 3 and config["pruner"] == "none"
    assert [int(r["phi"]) for r in read_csv(out / "family.csv")] == [1, 2, 3]
    for png in ("grid.png", "family.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    report = result.report()
    assert "most accurate: alpha=" in report and "FLOPs/base" in report and "drift" in report


def test_every_family_file_rebuilds(tmp_path, tiny_path):
    import torch

    out = tmp_path / "out"
    request = ScaleRequest("1,2,4", base=str(tiny_path), alpha=1.2, beta=1.1, gamma=1.15, out=str(out))
    result = scale_run.run_scale(request, progress=False)
    records = read_csv(out / "family.csv")
    assert [r["file"] for r in records] == ["tiny-phi1.yaml", "tiny-phi2.yaml", "tiny-phi4.yaml"]
    for record, row in zip(records, result.rows):
        spec = nas.load(out / record["file"])
        assert spec_hash(spec) == spec_hash(row.spec)
        model = nas.build_model(spec).eval()
        assert sum(p.numel() for p in model.parameters()) == int(record["params"]) == count_cost(spec).params
        assert int(record["resolution"]) == spec.resolution
        with torch.inference_mode():
            assert model(torch.randn(1, 3, spec.resolution, spec.resolution)).shape == (1, 10)


def test_given_coefficients_skip_the_grid(tmp_path, tiny_path):
    def never(spec, report=None):
        raise AssertionError("given coefficients must not evaluate anything")

    out = tmp_path / "out"
    request = ScaleRequest("1..3", base=str(tiny_path), alpha="1.2", beta="1.1", gamma="1.15", out=str(out))
    result = scale_run.run_scale(request, evaluator=never, progress=False)
    assert result.method == "given" and result.coefficients == (1.2, 1.1, 1.15) and result.grid == []
    assert not (out / "grid").exists() and not (out / "grid.csv").exists()
    base = nas.load(tiny_path)
    assert [spec_hash(r.spec) for r in result.rows] == [
        spec_hash(scale.scale_spec(base, 1.2, 1.1, 1.15, phi)) for phi in (1, 2, 3)]
    # a small base rounds its resolution to whole pixels: 16 x 1.15^phi
    assert [r.resolution for r in result.rows] == [18, 21, 24]


def test_small_bases_round_resolution_to_whole_pixels(tiny_spec_dict):
    b0 = nas.load_spec("efficientnet-b0")
    assert scale.scale_spec(b0, 1.2, 1.1, 1.15, 1).resolution == 256  # 257.6 -> a multiple of 8
    tiny = from_dict({**tiny_spec_dict, "resolution": 16})
    assert [scale.scale_spec(tiny, 1.0, 1.0, 1.1, phi).resolution for phi in (1, 2, 3)] == [18, 19, 21]
    assert scale.scale_resolution(tiny, 1.3).resolution == 21


def test_identical_architectures_are_evaluated_once(tiny_spec_dict):
    """On a small base, different coefficients often round to the same network; it is trained once."""
    calls = []
    evaluator = ScaledResolutionEvaluator(SearchConfig(evaluator="zero_cost:params"), base_resolution=16,
                                          proxy_resolution=8)
    tiny = from_dict({**tiny_spec_dict, "resolution": 16})
    a, b = scale.scale_spec(tiny, 1.3, 1.25, 1.0, 1), scale.scale_spec(tiny, 1.15, 1.2, 1.0, 1)
    assert spec_hash(a) != spec_hash(b) and spec_hash(as_built(a)) == spec_hash(as_built(b))
    assert spec_hash(as_built(a)) != spec_hash(as_built(tiny))  # wider: another network
    assert count_cost(as_built(a)) == count_cost(a)  # the built network, multipliers applied
    first = evaluator(a)
    evaluator._evaluators[8] = lambda spec, report=None: calls.append(spec)  # would record a second evaluation
    again = evaluator(b)
    assert calls == [] and again.score == first.score and again.seconds == 0.0
    assert evaluator.resolution_for(scale.scale_spec(tiny, 1.0, 1.0, 1.3, 1)) == 10  # 8 * 21 / 16


def test_base_from_a_run_inherits_its_evaluation_settings(tmp_path, tiny_path):
    runs = tmp_path / "runs"
    for name, epochs, age in (("old", 7, 100), ("new", 3, 0)):
        run = runs / name
        run.mkdir(parents=True)
        nas.save(nas.load(tiny_path), run / "best.yaml")
        (run / "config.yaml").write_text(yaml.safe_dump({**SearchConfig().to_dict(), "epochs": epochs,
                                                         "train_images": 500, "pruner": "median", "trials": 99}))
        stamp = time.time() - age
        os.utime(run / "best.yaml", (stamp, stamp))
    assert scale_run.latest_run(runs) == runs / "new"
    out = tmp_path / "out"
    result = scale_run.run_scale(ScaleRequest("1", out=str(out), pairs=("max_candidates=2", "seed=5")),
                                 runs_dir=runs, evaluator=params_as_accuracy, progress=False)
    assert result.base_source == str(runs / "new")
    config = yaml.safe_load((out / "grid" / "config.yaml").read_text())
    # the search's evaluation (epochs, training-set size) is inherited, its execution (pruner) and size (trials)
    # are not
    assert (config["epochs"], config["train_images"], config["seed"], config["pruner"], config["trials"]) == (
        3, 500, 5, "none", 2)


def test_a_finished_grid_is_not_run_again_and_keeps_its_base(tmp_path, tiny_path):
    out = tmp_path / "out"
    first = scale_run.run_scale(ScaleRequest("1", base=str(tiny_path), out=str(out), pairs=("max_candidates=2",)),
                                evaluator=params_as_accuracy, progress=False)

    def never(spec, report=None):
        raise AssertionError("a finished grid must not evaluate again")

    again = scale_run.run_scale(ScaleRequest("1..2", out=str(out)), evaluator=never, progress=False,
                                say=lambda _: None)
    assert again.resumed and again.coefficients == first.coefficients and [r.phi for r in again.rows] == [1, 2]
    with pytest.raises(nas.UserError, match="another base"):
        scale_run.run_scale(ScaleRequest("1", base="efficientnet-b0", out=str(out)), evaluator=never, progress=False)
    with pytest.raises(nas.UserError, match="stored in"):
        scale_run.run_scale(ScaleRequest("1", out=str(out), pairs=("max_candidates=3",)),
                            evaluator=never, progress=False)


def test_a_grid_another_process_makes_meanwhile_is_joined_not_replaced(tmp_path, tiny_path):
    """Two nas scale on one new --out: the one that finds the grid made while it prepared joins it as a resume
    (so another base is refused) instead of replacing grid.yaml under the other's trials."""
    from concurrent.futures import ThreadPoolExecutor

    from nas.io import updating

    made = tmp_path / "made"
    scale_run.run_scale(ScaleRequest("1", base="efficientnet-b0", out=str(made), pairs=("max_candidates=2",)),
                        evaluator=params_as_accuracy, progress=False, say=lambda _: None)
    out = tmp_path / "out"
    (out / scale_run.GRID_DIR).mkdir(parents=True)
    request = ScaleRequest("1", base=str(tiny_path), out=str(out), pairs=("max_candidates=2",))
    with ThreadPoolExecutor(1) as pool:
        with updating(out / scale_run.GRID_DIR / scale_run.GRID_FILE):  # the other process is making the grid
            joining = pool.submit(scale_run.run_scale, request, evaluator=params_as_accuracy, progress=False,
                                  say=lambda _: None)
            time.sleep(1.0)
            assert not joining.done(), joining.exception()  # it waits for the grid being made
            shutil.copytree(made, out, dirs_exist_ok=True)  # ... which then exists, of another base
        with pytest.raises(nas.UserError, match="another base"):
            joining.result(timeout=60)
    assert yaml.safe_load((out / "grid" / "grid.yaml").read_text())["base_source"] == "efficientnet-b0"
    assert nas.load(out / "grid" / "base.yaml").name == "efficientnet-b0"


def test_a_grid_a_ray_driver_works_on_is_refused_for_an_optuna_process(tmp_path, tiny_path):
    """The grid is a run like a search's: an Optuna process beside its Ray driver would evaluate candidates the
    driver does not count. One line naming --out; the grid resumes once the driver has ended."""
    from nas.io import held
    from nas.search.run_folder import RUN_LOCK

    out = tmp_path / "out"
    request = ScaleRequest("1", base=str(tiny_path), out=str(out), pairs=("max_candidates=2",))
    (out / scale_run.GRID_DIR).mkdir(parents=True)
    with held(out / scale_run.GRID_DIR / RUN_LOCK):  # what a Ray driver holds while it evaluates the grid
        with pytest.raises(nas.UserError, match=r"^--out: .* with backend=ray, which runs alone.*another --out"):
            scale_run.run_scale(request, evaluator=params_as_accuracy, progress=False, say=lambda _: None)
    result = scale_run.run_scale(request, evaluator=params_as_accuracy, progress=False, say=lambda _: None)
    assert result.winner is not None


def test_the_winner_waits_for_the_candidate_another_process_evaluates(tmp_path, tiny_path):
    """Two nas scale sharing a grid: the one that runs out of candidates to claim waits for the other's last,
    and picks the coefficients from the whole grid, not from what had finished when it ran out."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "out"
    request = ScaleRequest("1", base=str(tiny_path), out=str(out), pairs=("max_candidates=3",))
    last = scale.grid_candidates(max_candidates=3)[-1]

    def params_except_the_last(spec, report=None):  # the last candidate is left to "the other process"
        if spec == scale.scale_spec(nas.load(tiny_path), *last, 1):
            raise KeyboardInterrupt  # stands for a kill: the trial stays running
        return params_as_accuracy(spec)

    with pytest.raises(KeyboardInterrupt):
        scale_run.run_scale(request, evaluator=params_except_the_last, progress=False, say=lambda _: None)
    study = optuna_backend.open_study(out / "grid", SearchConfig())
    (left,) = [t for t in study.trials if t.state.name == "RUNNING"]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # now evaluating it
    try:
        study._storage.set_trial_user_attr(left._trial_id, "worker", f"{socket.gethostname()}:{other.pid}")
        said = []
        with ThreadPoolExecutor(1) as pool:
            joining = pool.submit(scale_run.run_scale, request, evaluator=params_as_accuracy, progress=False,
                                  say=said.append)
            time.sleep(3.0)
            assert not joining.done(), joining.exception()
            assert f"waiting for trial(s) {left.number}, which other processes are evaluating" in "\n".join(said)
            best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
            for key, value in best.user_attrs.items():  # the other process finishes it: the most accurate
                study._storage.set_trial_user_attr(left._trial_id, key, value)
            study._storage.set_trial_user_attr(left._trial_id, "accuracy", best.value + 1)
            study._storage.set_trial_state_values(left._trial_id, optuna.trial.TrialState.COMPLETE, [best.value + 1])
            result = joining.result(timeout=60)
    finally:
        other.kill()
        other.wait()
    assert [row["state"] for row in result.grid] == ["complete"] * 3
    assert result.coefficients == last


SLOW_GRID = """
import sys, time
from nas import scale_run
from nas.scale_run import ScaleRequest
from nas.cost import count_cost
from nas.evaluate.evaluators import Evaluation

def slow(spec, report=None):
    time.sleep(1.5)
    return Evaluation(score=count_cost(spec).params / 1e6, seconds=1.5)

scale_run.run_scale(ScaleRequest("1..2", base=sys.argv[1], out=sys.argv[2], pairs=("max_candidates=3",)),
                    evaluator=slow, progress=False)
"""


def test_a_killed_grid_resumes(tmp_path, tiny_path):
    """SIGKILL the grid after its first finished candidate; the rerun keeps it and runs only what is left."""
    script = tmp_path / "slow_grid.py"
    script.write_text(textwrap.dedent(SLOW_GRID))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(script), str(tiny_path), str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180  # a loaded CI machine takes long to import torch
        finished = []
        while not finished and time.time() < deadline:
            time.sleep(0.1)
            if (out / "grid" / optuna_backend.STORAGE_FILE).exists():
                finished = [r for r in grid_records(out) if r["state"] == "complete"]
        assert finished, "no candidate finished within three minutes"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = {r["number"]: r for r in grid_records(out) if r["state"] == "complete"}
    assert 1 <= len(before) < 3

    request = ScaleRequest("1..2", base=str(tiny_path), out=str(out), pairs=("max_candidates=3",))
    result = scale_run.run_scale(request, evaluator=params_as_accuracy, progress=False, say=lambda _: None)
    after = grid_records(out)
    complete = [r for r in after if r["state"] == "complete"]
    for number, record in before.items():  # nothing finished is lost, or run again
        assert [r["accuracy"] for r in after if r["number"] == number] == [record["accuracy"]]
    assert len(complete) == 3
    labels = [r["decisions"]["coefficients"] for r in complete]
    assert sorted(labels) == sorted(scale_run.coefficient_label(*c) for c in scale.grid_candidates(max_candidates=3))
    assert all(r["state"] in ("complete", "interrupted") for r in after)
    assert result.resumed and [r["state"] for r in result.grid] == ["complete"] * 3
    assert len(read_csv(out / "grid.csv")) == 3


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------

def test_preset_efficientnet_reproduces_b1_to_b7(tmp_path):
    done = subprocess.run([str(NAS), "scale", "--phi", "1..7", "--base", "efficientnet-b0", "--preset",
                           "efficientnet", "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "FLOPs (multiply-adds)" in done.stdout
    for phi, params in PUBLISHED_PARAMS.items():
        spec = nas.load(tmp_path / "b" / f"efficientnet-b{phi}.yaml")
        assert count_cost(spec).params == params
        assert spec_hash(spec) == spec_hash(nas.load_spec(f"efficientnet-b{phi}"))
    # B1's depth 1.1 rounds every stage's repeats up: FLOPs grow x1.78, not the ideal x1.26; the user is told
    assert "nas: warning: efficientnet-b1: FLOPs (multiply-adds) grew x1.78" in done.stderr


def test_cli_prints_the_table_and_warns_about_drift(tmp_path, tiny_path, capsys):
    code = main(["scale", "--phi", "1..2", "--base", str(tiny_path), "--alpha", "1.2", "--beta", "1.3", "--gamma",
                 "1", "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 0
    header = next(line for line in captured.out.splitlines() if line.lstrip().startswith("phi"))
    for word in ("depth", "width", "resolution", "params", "FLOPs (multiply-adds)", "FLOPs/base", "drift"):
        assert word in header
    # width 1.3 rounds 16 channels up to 24: the phi = 1 model costs far more than alpha*beta^2*gamma^2
    assert "nas: warning: tiny-phi1: FLOPs (multiply-adds) grew" in captured.err


@pytest.mark.parametrize("args, field", [
    (["--phi", "7..1"], "phi"),
    (["--phi", "1..x"], "phi"),
    (["--phi", "0"], "phi"),
    (["--phi", "-1"], "phi"),
    (["--phi", "1", "--alpha", "0.9", "--beta", "1.1", "--gamma", "1.15"], "alpha"),
    (["--phi", "1", "--alpha", "1.2"], "--beta, --gamma"),
    (["--phi", "1", "--base", "nosuch"], "--base"),
    (["--phi", "1", "--preset", "efficientnet", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.1"], "--preset"),
    (["--phi", "8", "--preset", "efficientnet"], "phi"),
    (["--phi", "1", "epoch=3"], "unknown key 'epoch' for nas scale (did you mean 'epochs'?)"),
    (["--phi", "1", "max_candidates=x"], "max_candidates"),
    (["--phi", "1", "trials=3"], "unknown key 'trials'"),
])
def test_careless_input_is_one_line_and_status_2(tmp_path, tiny_path, capsys, args, field):
    if "--base" not in args:
        args = args + ["--base", str(tiny_path)]
    code = main(["scale", *args, "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith(f"nas: error: {field}")
    assert not (tmp_path / "o").exists()


def test_careless_input_exit_status_from_the_shell(tmp_path):
    done = subprocess.run([str(NAS), "scale", "--phi", "7..1", "--base", "efficientnet-b0"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "nas: error: phi: got '7..1' (the range runs backwards); allowed: an integer from 1 to 16, "
        "a range such as 1..7, or a list such as 1,3,5"]
