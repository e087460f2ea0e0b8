"""Spaces declare the proxy resolution they need; every built-in space searches on the default data set."""

from pathlib import Path

import pytest

from nas.errors import UserError
from nas.search.run import run_search
from nas.space import load_space, needed_resolution, sample, smallest_resolution, space_from_dict, space_names
from nas.spec import replace, resolve


def test_osa_declares_the_smallest_resolution_its_most_downsampling_candidate_needs():
    osa = load_space("osa")
    assert osa.proxy_resolution == smallest_resolution(osa) == 29 == needed_resolution(osa)
    spec = sample(osa, lambda name, options: options[-1])  # the stride-4 stem and three max-pools
    resolve(replace(spec, resolution=29))
    with pytest.raises(Exception, match="vanishes"):
        resolve(replace(spec, resolution=28))


def test_a_declared_resolution_too_small_is_refused():
    import yaml

    with open(load_space("osa").source) as file:
        data = yaml.safe_load(file)
    with pytest.raises(UserError, match="proxy_resolution: got 16; allowed: at least 29"):
        space_from_dict({**data, "proxy_resolution": 16}, "osa.yaml")
    with pytest.raises(UserError, match="proxy_resolution: got 'big'; allowed: a positive image side"):
        space_from_dict({**data, "proxy_resolution": "big"}, "osa.yaml")


@pytest.mark.parametrize("space", space_names())
def test_every_builtin_space_runs_a_trial_with_its_defaults_on_fashion_mnist(space, tmp_path):
    # batch_size=500: the same images in few steps (small-image training is bound by per-op overhead)
    result = run_search([f"space={space}", "dataset=fashion-mnist", "epochs=1", "trials=1", "final_top_k=0",
                         "batch_size=500", f"out={tmp_path / space}"], progress=False, say=lambda line: None)
    (record,) = result.records
    assert record["state"] == "complete", record.get("note")
    assert 0.0 <= record["accuracy"] <= 1.0 and (tmp_path / space / "best.yaml").exists()


@pytest.mark.parametrize("space", ["mnas", "essp", "lcnet"])
def test_mnas_essp_and_lcnet_train_digits_at_16_px_and_fashion_mnist_at_its_own_28(space):
    # Chosen by bench/proxy_fidelity.py: at 8 px the later stages see 1x1 maps and rank worse.
    from nas.search.evaluation import configured_data
    from nas.search.preflight import proxy_resolution
    from nas.settings import SearchConfig

    assert needed_resolution(load_space(space)) == 16 > smallest_resolution(load_space(space))
    default = SearchConfig(space=space)
    assert default.dataset == "digits" and SearchConfig().space == "mnas"
    assert proxy_resolution(default) == 16 == configured_data(default).resolution
    assert proxy_resolution(SearchConfig(space=space, dataset="fashion-mnist")) == 28
    assert configured_data(SearchConfig(space=space, resolution=12)).resolution == 12  # resolution= still wins


def test_a_space_sets_its_own_proxy_training_defaults_under_what_the_user_gives(tmp_path):
    import yaml

    from nas.search.run import prepare_run

    with open(load_space("mnas").source) as file:
        data = yaml.safe_load(file)
    slow = tmp_path / "slow.yaml"  # mnas with a proxy learning rate of its own
    slow.write_text(yaml.safe_dump({**data, "name": "slow", "proxy_training": {"lr": 0.0005}}))
    assert load_space(str(slow)).proxy_training == {"lr": 0.0005} and load_space("mnas").proxy_training == {}
    config, run_dir, _ = prepare_run([f"space={slow}", f"out={tmp_path / 'slow'}"])
    assert config.train.lr == 0.0005 and yaml.safe_load((run_dir / "config.yaml").read_text())["lr"] == 0.0005
    config, _, _ = prepare_run([f"space={slow}", "lr=0.003", f"out={tmp_path / 'given'}"])
    assert config.train.lr == 0.003  # key=value wins
    config, _, _ = prepare_run([f"out={tmp_path / 'mnas'}"])
    assert config.train.lr == 0.003  # nas's default: mnas declares none
    # A run made while mnas declared lr 0.0005 (stored in its config.yaml) resumes with its own.
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.yaml").write_text(yaml.safe_dump({"space": "mnas", "objective": "flops", "lr": 0.0005}))
    config, _, resumed = prepare_run([f"out={old}"])
    assert resumed and config.train.lr == 0.0005
    with pytest.raises(UserError, match="proxy_training.w: got -1; allowed: a key among epochs"):
        space_from_dict({**data, "proxy_training": {"w": -1}}, "mnas.yaml")
    with pytest.raises(UserError, match="mnas.yaml: proxy_training.lr: got 'fast'"):
        space_from_dict({**data, "proxy_training": {"lr": "fast"}}, "mnas.yaml")


def test_the_fidelity_bench_measures_what_nas_search_trains_for_each_space(monkeypatch):
    # bench/proxy_fidelity.py marks "the default" row by matching nas's resolved settings: if a space's
    # proxy settings change, the bench must follow, or its table compares against the wrong row.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    import proxy_fidelity as bench

    assert bench.default_setting("mnas").name == "digits-16px-4ep"
    assert bench.default_setting("lcnet").name == "digits-16px-4ep"
    assert bench.default_setting("essp").name == "digits-16px-4ep"
    osa = bench.at_space_side(bench.SETTINGS["digits-8px-4ep"], "osa")  # 8 px vanishes in osa's stem
    assert (osa.resolution, osa.name) == (29, "digits-29px-4ep")
    assert bench.at_space_side(bench.SETTINGS["digits-8px-4ep"], "mnas").resolution is None  # 8 px works there
