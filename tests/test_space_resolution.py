"""Spaces declare the proxy resolution they need; every built-in space searches on the default data set."""

from dataclasses import replace as replace_config
from pathlib import Path

import pytest
import yaml

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
    # No dataset=: Fashion-MNIST is nas's default and every built-in space's measured proxy. epochs=1 and
    # batch_size=500: the same images in few steps (small-image training is bound by per-op overhead).
    result = run_search([f"space={space}", "epochs=1", "trials=1", "final_top_k=0", "batch_size=500",
                         f"out={tmp_path / space}"], progress=False, say=lambda line: None)
    (record,) = result.records
    assert record["state"] == "complete", record.get("note")
    assert 0.0 <= record["accuracy"] <= 1.0 and (tmp_path / space / "best.yaml").exists()
    stored = yaml.safe_load((tmp_path / space / "config.yaml").read_text())
    assert stored["dataset"] == "fashion-mnist" == load_space(space).proxy_training["dataset"]
    assert stored["train_images"] == load_space(space).proxy_training["train_images"]


@pytest.mark.parametrize("space", ["mnas", "essp", "lcnet"])
def test_mnas_essp_and_lcnet_train_digits_at_16_px_and_plain_fashion_mnist_at_its_own_28(space):
    # Their proxy_resolution, chosen by bench/proxy_fidelity.py on digits: at 8 px the later stages see 1x1 maps
    # and rank worse. It is the least side when their own proxy (14 px Fashion-MNIST) does not apply.
    from nas.search.evaluation import configured_data
    from nas.search.preflight import proxy_resolution
    from nas.settings import SearchConfig

    assert needed_resolution(load_space(space)) == 16 > smallest_resolution(load_space(space))
    assert SearchConfig().dataset == "fashion-mnist" and SearchConfig().space == "mnas"  # nas's plain defaults
    digits = SearchConfig(space=space, dataset="digits")
    assert proxy_resolution(digits) == 16 == configured_data(digits).resolution
    assert proxy_resolution(SearchConfig(space=space)) == 28
    assert configured_data(replace_config(digits, resolution=12)).resolution == 12  # resolution= still wins


def test_mnas_searches_its_measured_proxy_fashion_mnist_at_14_px_on_4000_images(tmp_path):
    # Chosen by bench/proxy_fidelity.py: it ranks the reward at tau 0.94 against the reference, digits at 0.77.
    from nas.search.evaluation import configured_data
    from nas.search.run import prepare_run

    config, run_dir, _ = prepare_run([f"out={tmp_path / 'mnas'}"])
    assert (config.space, config.dataset, config.resolution, config.train_images, config.train.epochs) == (
        "mnas", "fashion-mnist", 14, 4000, 3)
    data = configured_data(config)
    assert len(data.train_y) == 4000 and data.resolution == 14 and len(data.test_y) == 2000  # held out: whole
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train_images"] == 4000
    from nas.search.outputs import images_text, side_text
    from nas.settings import KEYS

    for key, value in load_space("mnas").proxy_training.items():  # --help and the README name mnas's own values
        assert f"(mnas: {value})" in KEYS[key].shown_default, key

    assert side_text(config) + images_text(config) == " at 14 px on 4,000 of its training images"
    # The space's proxy was measured on Fashion-MNIST: on another data set none of it applies.
    config, _, _ = prepare_run(["dataset=digits", f"out={tmp_path / 'digits'}"])
    assert (config.dataset, config.resolution, config.train_images, config.train.epochs) == ("digits", None, None, 4)
    config, _, _ = prepare_run(["epochs=2", "train_images=500", f"out={tmp_path / 'given'}"])  # key=value wins
    assert (config.dataset, config.resolution, config.train_images, config.train.epochs) == (
        "fashion-mnist", 14, 500, 2)


def test_an_old_run_resumes_with_what_it_stored_not_the_space_s_new_proxy(tmp_path):
    # A run made while mnas searched digits stored resolution: null and no train_images: neither may become the
    # space's 14 px and 4,000 images on resume, or its later trials would be scored on another proxy.
    from nas.search.run import prepare_run

    old = tmp_path / "old"
    old.mkdir()
    (old / "config.yaml").write_text(yaml.safe_dump({"space": "mnas", "objective": "flops", "dataset": "digits",
                                                     "resolution": None, "epochs": 4, "proxy_resolution": 16}))
    config, _, resumed = prepare_run([f"out={old}"])
    assert resumed and (config.dataset, config.resolution, config.train_images, config.train.epochs) == (
        "digits", None, None, 4)
    # ... and a run that has scored trials refuses another training-set size, as any proxy change.
    from nas.search.run_folder import as_settings, changed_settings

    stored = yaml.safe_load((old / "config.yaml").read_text())
    assert changed_settings(as_settings(stored), replace_config(config, train_images=4000)) == [
        "train_images None -> 4000"]


def test_the_fidelity_bench_measures_what_nas_search_trains_for_each_space(monkeypatch):
    # bench/proxy_fidelity.py marks "the default" row by matching nas's resolved settings: if a space's
    # proxy settings change, the bench must follow, or its table compares against the wrong row.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    import proxy_fidelity as bench

    assert bench.default_setting("mnas").name == "fmnist-14px-3ep-4k"
    assert bench.default_setting("lcnet").name == "fmnist-14px-3ep-4k"
    assert bench.default_setting("essp").name == "fmnist-14px-3ep-4k"
    assert bench.default_setting("osa").name == "fmnist-29px-4ep-2k"  # its side: at_space_side
    osa = bench.at_space_side(bench.SETTINGS["digits-8px-4ep"], "osa")  # 8 px vanishes in osa's stem
    assert (osa.resolution, osa.name) == (29, "digits-29px-4ep")
    assert bench.at_space_side(bench.SETTINGS["digits-8px-4ep"], "mnas").resolution is None  # 8 px works there
