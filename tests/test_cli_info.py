"""`nas info` and the Python API it stands on."""

import json
import subprocess
import sys
from pathlib import Path

import torch

import nas

NAS = Path(sys.executable).parent / "nas"
B0_PARAMS = 5288548


def run_nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(NAS), *args], capture_output=True, text=True, timeout=60)


def test_info_prints_the_table():
    done = run_nas("info", "efficientnet-b0")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("efficientnet-b0: 5,288,548 params, ")
    assert "FLOPs (multiply-adds)" in lines[0]
    assert lines[1].split() == ["stage", "block", "n", "out", "size", "params", "FLOPs", "MAC"]
    rows = [line.split() for line in lines[2:] if line.split()[0] in ("stem", "stage", "head")]
    assert [row[0] for row in rows] == ["stem"] + ["stage"] * 7 + ["head"]
    assert rows[1][:3] == ["stage", "0", "mbconv"]
    assert sum(int(row[-3].replace(",", "")) for row in rows) == B0_PARAMS


def test_info_json_is_one_object():
    done = run_nas("info", "efficientnet-b0", "--json")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1
    info = json.loads(done.stdout)
    assert set(info) == {"name", "params", "flops", "mac", "resolution"}
    assert info["name"] == "efficientnet-b0"
    assert info["params"] == B0_PARAMS
    assert info["resolution"] == 224
    cost = nas.count_cost(nas.load_spec("efficientnet-b0"))
    assert (info["flops"], info["mac"]) == (cost.flops, cost.mac)


def test_info_resolution_changes_flops_not_params():
    full = json.loads(run_nas("info", "efficientnet-b0", "--json").stdout)
    half = json.loads(run_nas("info", "efficientnet-b0", "--json", "--resolution", "112").stdout)
    assert half["resolution"] == 112
    assert half["params"] == full["params"]
    assert half["flops"] < full["flops"] / 3  # a quarter of the pixels, give or take the edges
    assert half["mac"] < full["mac"]


def test_info_reads_a_yaml_file(tmp_path, tiny_spec_dict):
    spec = nas.spec.from_dict(tiny_spec_dict)
    path = tmp_path / "tiny.yaml"
    nas.save(spec, path)
    done = run_nas("info", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"] == nas.count_cost(spec).params


def test_bad_resolution_and_arguments_are_one_line_errors():
    for args in (["info", "efficientnet-b0", "--resolution", "0"], ["info", "efficientnet-b0", "--resolution", "x"],
                 ["info"], ["nonsense"]):
        done = run_nas(*args)
        assert done.returncode == 2, args
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith("nas: error: ")


def test_python_api():
    names = nas.zoo_names()
    assert "efficientnet-b0" in names and names == sorted(names)
    spec = nas.load_spec("efficientnet-b0")
    assert isinstance(spec, nas.Spec)
    cost = nas.count_cost(spec)
    assert isinstance(cost, nas.Cost)
    assert cost.params == B0_PARAMS
    assert 0.38e9 < cost.flops < 0.40e9  # the paper's 0.39B multiply-adds
    assert cost.resolution == 224
    model = nas.build_model("efficientnet-b0")  # a name works as well as a Spec
    assert isinstance(model, torch.nn.Module)
    assert sum(p.numel() for p in model.parameters()) == B0_PARAMS
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
