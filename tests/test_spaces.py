"""The search spaces in search_spaces/: each loads by name and by path, samples only valid specs whose FLOPs
span the space's target, builds into models whose parameters match the cost model, and contains the
published architecture it is built around. Malformed space files fail with one line through `nas search`."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.space import SPACES_DIR, load_space, needed_resolution, random_choices, sample, space_names
from nas.spec import spec_hash, with_overrides
from nas.units import parse_count

REQUIRED = ("mnas", "osa", "essp", "lcnet")
SPACES = space_names()  # every space file, so a new one is tested too
SAMPLES = 100
NAS = Path(sys.executable).parent / "nas"



def documented_target(space) -> float:
    """The FLOPs target a space documents ("target_flops=400M" in its description); 400M, the search
    default, for a space that documents none."""
    found = re.search(r"target_flops=(\S+?)[.,;)]?(?:\s|$)", space.description)
    return parse_count(found.group(1), "target_flops") if found else 400e6


def test_the_family_spaces_exist():
    assert set(REQUIRED) <= set(SPACES)


@pytest.mark.parametrize("name", SPACES)
def test_loads_by_name_and_by_path(name):
    by_name = load_space(name)
    by_path = load_space(str(SPACES_DIR / f"{name}.yaml"))
    assert by_name.name == by_path.name == name
    assert by_name.decisions() == by_path.decisions()
    assert by_name.description


@pytest.mark.parametrize("name", SPACES)
def test_random_samples_are_valid_and_span_the_target(name):
    space = load_space(name)
    target = documented_target(space)
    flops = []
    for seed in range(SAMPLES):
        cost = nas.count_cost(sample(space, random_choices(seed)))  # raises SpecError for an invalid spec
        assert cost.params > 0
        flops.append(cost.flops)
    assert min(flops) < target < max(flops), (
        f"{name}: {SAMPLES} samples span {min(flops) / 1e6:.0f}M to {max(flops) / 1e6:.0f}M FLOPs, "
        f"not the documented target {target / 1e6:.0f}M")
    assert len(set(flops)) > SAMPLES // 2  # the choices do change the architecture


def proxy_resolution(space) -> int:
    """The smallest side a search trains at without resolution=: the built-in digits' 8 px or the space's need."""
    return max(8, needed_resolution(space))


@pytest.mark.parametrize("name", SPACES)
def test_samples_fit_the_proxy_resolution(name):
    """A search trains candidates at the data set's resolution: no feature map may vanish there."""
    space = load_space(name)
    resolution = proxy_resolution(space)
    for seed in range(20):
        nas.count_cost(with_overrides(sample(space, random_choices(seed)), resolution=resolution))


@pytest.mark.parametrize("name", SPACES)
def test_samples_build_and_match_the_cost_model(name):
    """A few samples at a small resolution: a forward pass works, params and FLOPs equal count_cost's."""
    space = load_space(name)
    for seed in range(3):
        spec = with_overrides(sample(space, random_choices(1000 + seed)), resolution=64, num_classes=10)
        model = nas.build_model(spec).eval()
        cost = nas.count_cost(spec)
        assert sum(p.numel() for p in model.parameters()) == cost.params
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(torch.randn(2, 3, 64, 64))
        assert out.shape == (2, 10)
        assert counter.get_total_flops() // 2 == 2 * cost.flops


@pytest.mark.parametrize("name", SPACES)
def test_decision_names_are_stable(name):
    """Decision names are what a run's journal stores: they must not change between loads or samples,
    and every decision a sample asks for is one the space lists (in the space's fixed order)."""
    space = load_space(name)
    names = list(space.decisions())
    assert names == list(load_space(name).decisions())
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"(global\.[a-z_.]+|stage\d+\.[a-z_]+)", n) for n in names)
    for seed in range(5):
        asked: list[str] = []
        rng = random_choices(seed)

        def choose(decision, options, rng=rng, asked=asked):
            asked.append(decision)
            return rng(decision, options)

        sample(space, choose)
        assert set(asked) <= set(names)
        assert asked == sorted(asked, key=names.index)


def _sampled(name, values):
    """The spec the space yields when each decision takes ``values(decision_key, stage_index)``."""
    def choose(decision, options):
        scope, key = decision.split(".", 1)
        value = values(key, int(scope[5:]) if scope.startswith("stage") else None)
        assert value in options, (decision, value, options)
        return value
    return sample(load_space(name), choose)


def test_spaces_contain_their_reference_architectures():
    """Each space holds the published model it is built around (same architecture, whatever the name)."""
    b0 = {"block": "mbconv", "kernel": [3, 3, 5, 3, 5, 5, 3], "se_ratio": 0.25, "skip": True,
          "expansion": [1, 6, 6, 6, 6, 6, 6], "repeats_delta": 0, "channel_scale": 1.0}
    mnas = _sampled("mnas", lambda key, i: b0[key][i] if isinstance(b0[key], list) else b0[key])
    assert spec_hash(mnas) == spec_hash(nas.load_spec("efficientnet-b0"))

    vov = {"stage_channels": [64, 80, 96, 112], "out_channels": [112, 256, 384, 512],
           "layers": 3, "ese": True, "depthwise": True, "repeats": 1}
    osa = _sampled("osa", lambda key, i: vov[key][i] if isinstance(vov[key], list) else vov[key])
    assert spec_hash(osa) == spec_hash(nas.load_spec("vovnet-19-slim-dw-ese"))

    limits = [13, 11, 9, 9, 7, 7, 5]
    repeats = {2: 3, 4: 7, 6: 3}
    espnet = {"width_multiplier": lambda i: 1.0, "branches": lambda i: 4, "receptive_limit": limits.__getitem__,
              "repeats": repeats.__getitem__}
    essp = _sampled("essp", lambda key, i: espnet[key](i))
    assert spec_hash(essp) == spec_hash(nas.load_spec("espnetv2-s1.0"))

    lc = {"width_multiplier": 1.5, "head.channels": 1280}
    lcnet = _sampled("lcnet", lambda key, i: lc[key] if i is None else
                     {"kernel": [3, 3, 3, 3, 5, 5][i], "se_ratio": 0.25 if i == 5 else 0}[key])
    assert spec_hash(lcnet) == spec_hash(nas.load_spec("lcnet-x1.5"))


# --------------------------------------------------------------------------------------------
# Malformed spaces through the command line: one line, exit status 2, nothing written
# --------------------------------------------------------------------------------------------

GOOD = (SPACES_DIR / "lcnet.yaml").read_text()
MALFORMED = {
    "bad_yaml": "name: broken\nskeleton: [{out_channels: 16, stride: 1\n",
    "unknown_top_level_key": GOOD + "targets: [400M]\n",
    "unknown_block_kind": GOOD.replace("per_stage:\n", "per_stage:\n  block: [separable, nosuch]\n"),
    "empty_option_list": GOOD.replace("kernel: [3, 5]", "kernel: []"),
}


def test_malformed_spaces_fail_with_one_line(tmp_path):
    assert all(text != GOOD for text in MALFORMED.values())
    arguments = {"nosuch": "space=nosuch"}
    for case, text in MALFORMED.items():
        path = tmp_path / f"{case}.yaml"
        path.write_text(text)
        arguments[case] = f"space={path}"
    # the subprocesses run at once: each spends most of its time importing torch
    runs = {case: subprocess.Popen([str(NAS), "search", argument, "trials=1", "--quiet"], cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for case, argument in arguments.items()}
    expected = {"bad_yaml": "malformed YAML", "unknown_top_level_key": "targets", "unknown_block_kind": "nosuch",
                "empty_option_list": "non-empty list", "nosuch": "nosuch"}
    for case, process in runs.items():
        out, err = process.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert process.returncode == 2, (case, out, err)
        assert len(lines) == 1 and lines[0].startswith("nas: error: "), (case, err)
        assert expected[case] in lines[0], (case, lines[0])
    assert not (tmp_path / "runs").exists()
