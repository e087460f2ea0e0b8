"""The latency table: sums measured block entries, is keyed by device and threads, survives a corrupt file,
fills on demand, and is what objective=latency uses by default."""

import json

import pytest
import torch

from nas.cost import count_cost
from nas.evaluate import latency_table as lt
from nas.spec import from_dict


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def one_layer():
    """A network of one 3x3 conv-BN-ReLU block and a pool-linear head."""
    return from_dict({"name": "one", "resolution": 16, "num_classes": 4, "stem": [],
                      "stages": [{"block": "conv", "out_channels": 8, "kernel": 3, "stride": 1}],
                      "head": {"channels": 0}})


def test_one_layer_prediction_is_the_measured_sum(one_layer):
    table = lt.load_table("cpu", threads=1)
    assert table.entries == {} and table.ms_per_mparam is None
    predicted = lt.predict(table, one_layer)  # times the conv and the head
    layers = lt.spec_layers(one_layer)
    assert [layer.key.split("(")[0] for layer in layers] == ["Conv", "Head"]
    assert set(table.entries) == {layer.key for layer in layers}
    assert all(table.entries[layer.key] > 0 for layer in layers)
    # a network this small keeps its weights in cache: no overhead, and no whole network is timed to fit one
    assert predicted == pytest.approx(sum(table.entries.values()))
    assert table.networks == [] and table.ms_per_mparam is None
    # stored, and read back to the same prediction without timing anything
    again = lt.load_table("cpu", threads=1)
    assert again.entries == table.entries and lt.predict(again, one_layer) == pytest.approx(predicted)


def test_table_is_keyed_by_device_and_threads(one_layer):
    one, two = lt.load_table("cpu", 1), lt.load_table("cpu", 2)
    assert "1 threads" in one.fingerprint and "2 threads" in two.fingerprint
    assert one.path != two.path
    lt.predict(one, one_layer)
    assert one.path.exists() and not two.path.exists()
    fresh = lt.load_table("cpu", 2)
    assert fresh.entries == {}  # another thread count measures anew
    lt.predict(fresh, one_layer)
    assert two.path.exists() and set(fresh.entries) == set(one.entries)
    assert torch.get_num_threads() == 1  # the conftest's count is back after timing with 2


def test_a_corrupt_table_is_rebuilt_with_a_warning(one_layer, capsys):
    table = lt.load_table("cpu", 1)
    table.path.parent.mkdir(parents=True)
    table.path.write_text('{"format": 1, "entries": {"Conv(')  # torn write from an older tool
    reloaded = lt.load_table("cpu", 1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable" in err and str(table.path) in err and "rebuilding" in err
    assert reloaded.entries == {}
    lt.predict(reloaded, one_layer)
    data = json.loads(table.path.read_text())
    assert data["fingerprint"] == reloaded.fingerprint and len(data["entries"]) == 2


def test_missing_entries_are_timed_on_demand(one_layer, tiny_spec_dict):
    table = lt.load_table("cpu", 1)
    lt.fill(table, [one_layer])
    before = dict(table.entries)
    tiny = from_dict(tiny_spec_dict)
    predicted = lt.predict(table, tiny)
    assert predicted > 0 and len(table.entries) > len(before)
    assert all(table.entries[k] == v for k, v in before.items())  # known entries are never re-timed
    assert table.networks == []  # small networks never time the whole network


def test_the_overhead_is_fitted_on_large_networks_only_and_never_negative(tmp_path):
    table = lt.LatencyTable("cpu", 1, "test", tmp_path / "t.json")
    table.networks = [[1.0, 2.0, 80_000]]              # noise divided by few parameters: -12.5 ms per million
    assert table.ms_per_mparam is None                 # ... is not a fit
    table.networks.append([9.0, 8.0, 2_000_000])       # 0.5 ms per million
    assert table.ms_per_mparam == pytest.approx(0.5)
    table.networks = [[7.0, 8.0, 2_000_000]]           # measured below the blocks' sum
    assert table.ms_per_mparam == 0.0


def test_the_overhead_is_the_ratio_of_sums_and_needs_several_networks(tmp_path):
    table = lt.LatencyTable("cpu", 1, "test", tmp_path / "t.json")
    table.networks = [[9.0, 8.0, 2_000_000], [20.0, 16.0, 6_000_000]]  # rates 0.5 and 0.67 ms per million
    assert table.ms_per_mparam == pytest.approx(5.0 / 8.0)             # not their mean or median (0.58)
    assert not table.calibrated
    table.networks += [[9.0, 8.0, 2_000_000]] * (lt.OVERHEAD_NETWORKS - 2) + [[1.0, 2.0, 80_000]]
    assert table.calibrated and len(table.fit_networks()) == lt.OVERHEAD_NETWORKS


WIDE_SPACE = """
name: wide
description: Networks of 1M+ parameters that time in milliseconds (8 px), for calibration tests.
spec:
  resolution: 8
  num_classes: 4
  stem: [{block: conv, out_channels: 64, kernel: 1, stride: 1}]
  head: {channels: 0}
per_stage:
  block: [conv]
  kernel: [3, 5]
  channel_scale: [0.75, 1.0]
skeleton:
  - {out_channels: 512, repeats: 1, stride: 1}
  - {out_channels: 512, repeats: 1, stride: 1}
"""


def test_a_latency_search_calibrates_on_its_space_before_its_first_prediction(tmp_path):
    from nas.search.candidate import Context
    from nas.search.config import SearchConfig
    from nas.space import load_space, random_choices, sample

    path = tmp_path / "wide.yaml"
    path.write_text(WIDE_SPACE)
    space = load_space(str(path))
    assert all(count_cost(sample(space, random_choices(seed))).params >= lt.FIT_MIN_PARAMS for seed in range(20))
    context = Context(SearchConfig(objective="latency", target=5.0), lambda choose: sample(space, choose), None)
    first = sample(space, random_choices(0))
    cost = context.objective_cost(first, "first", count_cost(first))
    table = lt.load_table("cpu", 1)
    # the overhead was fitted on several distinct networks of the space before the first cost was given ...
    assert table.calibrated and len({(s, p) for _, s, p in table.networks}) == len(table.networks)
    assert cost == pytest.approx(lt.predict(table, first, fit_overhead=False))
    rate = table.ms_per_mparam
    # ... and later predictions time no whole network, so every trial's cost is on the same footing
    for seed in range(2, 8):
        spec = sample(space, random_choices(seed))
        context.objective_cost(spec, f"k{seed}", count_cost(spec))
    again = lt.load_table("cpu", 1)
    assert again.networks == table.networks and again.ms_per_mparam == rate
    # another worker of the search (its own Context, the same device's table) finds it calibrated
    other = Context(SearchConfig(objective="latency", target=5.0), lambda choose: sample(space, choose), None)
    spec = sample(space, random_choices(9))
    cost = other.objective_cost(spec, "k9", count_cost(spec))
    assert cost == pytest.approx(lt.predict(again, spec, fit_overhead=False))
    assert lt.load_table("cpu", 1).networks == table.networks


def test_the_first_large_network_is_timed_once_to_fit_the_overhead():
    wide = from_dict({"name": "wide", "resolution": 8, "num_classes": 4,
                      "stem": [{"block": "conv", "out_channels": 512, "kernel": 1, "stride": 1}],
                      "stages": [{"block": "conv", "out_channels": 512, "kernel": 3, "stride": 1}],
                      "head": {"channels": 0}})
    assert count_cost(wide).params >= lt.FIT_MIN_PARAMS
    table = lt.load_table("cpu", 1)
    predicted = lt.predict(table, wide)
    assert len(table.networks) == 1 and table.ms_per_mparam is not None and table.ms_per_mparam >= 0
    measured, summed, params = table.networks[0]
    assert predicted == pytest.approx(summed + table.ms_per_mparam * params / 1e6) and predicted >= summed > 0
    lt.predict(table, wide)
    assert len(table.networks) == 1  # fitted once


def test_build_a_space_and_specs(tiny_space, one_layer):
    table, timed = lt.build_table(str(tiny_space), [one_layer], samples=2, progress=False)
    assert timed == len(table.entries) > 2
    _, again = lt.build_table(str(tiny_space), [], samples=2, progress=False)
    assert again == 0  # everything was already there


def test_objective_latency_predicts_by_default(one_layer):
    from nas.search.candidate import Context
    from nas.search.config import SearchConfig

    config = SearchConfig(objective="latency", target=5.0)
    assert config.latency == "predicted" and config.latency_threads == 1
    cost = Context(config, lambda choose: one_layer, None).objective_cost(one_layer, "k", count_cost(one_layer))
    table = lt.load_table("cpu", 1)
    assert table.path.exists() and cost == pytest.approx(lt.predict(table, one_layer))


def test_a_stale_table_saving_keeps_the_networks_another_process_calibrated(tmp_path, one_layer):
    """Two holders of one device's table (two processes: a search and `nas latency build`, say): the one
    that loaded it before the other calibrated must not erase that calibration when it saves."""
    from nas.space import load_space, random_choices, sample

    path = tmp_path / "wide.yaml"
    path.write_text(WIDE_SPACE)
    space = load_space(str(path))
    stale = lt.load_table("cpu", 1)           # loaded before the calibration below
    calibrating = lt.load_table("cpu", 1)
    lt.calibrate(calibrating, (sample(space, random_choices(seed)) for seed in range(20)))
    assert lt.load_table("cpu", 1).calibrated
    lt.fill(stale, [one_layer], overhead_networks=0)   # times a small network's blocks and saves
    stored = lt.load_table("cpu", 1)
    assert stored.networks == calibrating.networks and stored.calibrated
    assert set(calibrating.entries) | set(stale.entries) <= set(stored.entries)
    assert stale.networks == calibrating.networks  # and the stale holder now predicts with the same overhead


CALIBRATING_WORKER = """
import sys, time
from pathlib import Path
from nas.cost import count_cost
from nas.search.candidate import Context
from nas.search.config import SearchConfig
from nas.space import load_space, random_choices, sample

space_file, go = sys.argv[1], Path(sys.argv[2])
space = load_space(space_file)
context = Context(SearchConfig(objective="latency", target=5.0), lambda choose: sample(space, choose), None)
spec = sample(space, random_choices(0))
while not go.exists():  # both workers start calibrating together
    time.sleep(0.01)
print(repr(context.objective_cost(spec, "first", count_cost(spec))))
"""


def test_two_processes_of_a_search_calibrate_the_table_once(tmp_path, cache):
    """Two worker processes of one latency search start at once on a device with no table: one calibrates
    (holding the device's measuring lock), the other waits, finds it calibrated and predicts the same cost."""
    import os
    import subprocess
    import sys

    from nas.space import load_space, random_choices, sample

    path = tmp_path / "wide.yaml"
    path.write_text(WIDE_SPACE)
    go = tmp_path / "go"
    env = {**os.environ, "NAS_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-c", CALIBRATING_WORKER, str(path), str(go)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()
    results = [worker.communicate(timeout=300) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), [err for _, err in results]
    costs = [float(out) for out, _ in results]
    table = lt.load_table("cpu", 1)
    assert len(table.networks) == lt.OVERHEAD_NETWORKS and table.calibrated  # calibrated once, not twice
    first = sample(load_space(str(path)), random_choices(0))
    assert costs[0] == costs[1] == pytest.approx(lt.predict(table, first, fit_overhead=False))
