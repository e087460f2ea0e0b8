"""Spaces declare the proxy resolution they need; every built-in space searches on the default data set."""

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
