"""The one settings definition (nas.settings): defaults, validation, --help, the README table and
config.yaml all come from it; it imports no torch; a run's config.yaml written by an older nas resumes."""

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from nas.errors import UserError
from nas.search import run_search
from nas.settings import (
    GRID_KEYS,
    KEYS,
    TRAIN_KEYS,
    ZERO_COST_PROXIES,
    SearchConfig,
    TrainSettings,
    apply,
    key_table,
    parse_grid,
)

NAS = str(Path(sys.executable).parent / "nas")
README = Path(__file__).resolve().parent.parent / "README.md"


def _help(*command: str) -> str:
    done = subprocess.run([NAS, *command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_search_help_lists_every_key_with_its_default_and_meaning():
    text = _help("search")
    assert "see README" not in text
    for name, key in KEYS.items():
        assert f"  {name}={key.shown_default}\n" in text, name
        assert key.meaning in " ".join(text.split()), name
    assert "  batch_size=32\n" in text and "  target_flops=400M\n" in text  # nested training keys, units as typed


def test_scale_help_lists_the_grid_keys():
    text = _help("scale")
    for name, key in GRID_KEYS.items():
        assert f"  {name}={key.shown_default}\n" in text, name
    assert "  step=0.05\n" in text and "  max_candidates=16\n" in text


def test_readme_holds_exactly_the_rendered_key_table():
    """Regenerate with: python tools/update_readme_keys.py"""
    table = key_table()
    readme = README.read_text()
    assert table in readme
    start = readme.index("| key | default | meaning | allowed |")
    assert readme[start:readme.index("\n\n", start) + 1] == table  # no extra rows after it either
    assert len(table.splitlines()) == len(KEYS) + 2


def test_settings_import_no_torch():
    code = ("import sys, nas.settings, nas.settings.values; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'optuna', 'ray', 'numpy')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_default_is_allowed_by_its_own_parser():
    for name, key in {**KEYS, **GRID_KEYS}.items():
        if key.default is not None:
            assert key.parse(name, key.default) == key.default, name


def test_training_keys_are_nested_not_repeated():
    assert set(TRAIN_KEYS) <= {f.name for f in fields(TrainSettings)}
    assert not set(TRAIN_KEYS) & {f.name for f in fields(SearchConfig)}
    assert SearchConfig().train == TrainSettings()
    config = apply(SearchConfig(), {"epochs": "2", "optimizer": "sgd", "weight_decay": "0", "seed": "7",
                                    "backend": "ray", "cpus_per_trial": "3"})
    assert (config.train.epochs, config.train.optimizer, config.train.weight_decay) == (2, "sgd", 0.0)
    settings = config.train_settings()  # what a trial trains with
    assert (settings.epochs, settings.seed, settings.threads) == (2, 7, 3)
    assert apply(SearchConfig(), {"seed": "7"}).train_settings().threads == 1


def test_config_yaml_round_trips_flat():
    config = apply(SearchConfig(), {"epochs": "3", "lr": "0.01", "target": "20ms", "objective": "latency",
                                    "rewrite_convs": "false"})
    stored = yaml.safe_load(yaml.safe_dump(config.to_dict(), sort_keys=False))
    assert stored["epochs"] == 3 and "train" not in stored  # the keys a user types, as they type them
    assert apply(SearchConfig(), {k: v for k, v in stored.items() if v is not None}) == config


@pytest.mark.parametrize("values, words", [
    ({"epoch": "3"}, "unknown key 'epoch' (did you mean 'epochs'?)"),
    ({"optimizer": "adam"}, "optimizer: got 'adam'; allowed: adamw, sgd"),
    ({"reward": "linear"}, "allowed: soft, piecewise, hard, accuracy"),
    ({"evaluator": "zero_cost:nope"}, "allowed: train, hybrid, zero_cost:synflow"),
    ({"label_smoothing": "1"}, "label_smoothing: got '1'; allowed: a number in [0, 1)"),
    ({"rewrite_convs": "maybe"}, "rewrite_convs: got 'maybe'; allowed: true, false"),
])
def test_a_bad_value_names_the_key_and_what_is_allowed(values, words):
    with pytest.raises(UserError) as caught:
        apply(SearchConfig(), values)
    assert words in str(caught.value)


def test_grid_keys_parse_and_reject():
    assert parse_grid({"step": "0.1", "max_candidates": "3"}) == {"step": 0.1, "max_candidates": 3}
    for bad in ({"step": "0"}, {"max_candidates": "0"}, {"tolerance": "x"}):
        with pytest.raises(UserError, match=next(iter(bad))):
            parse_grid(bad)


def test_zero_cost_scores_exactly_the_declared_proxies():
    from nas.evaluate import zero_cost

    assert set(zero_cost.TORCH_PROXIES) | {"params", "flops"} == set(ZERO_COST_PROXIES)


#: config.yaml as nas wrote it before the training settings were nested (a flat mapping of 30 keys).
OLD_CONFIG = """space: {space}
objective: flops
target_flops: 2000000.0
target: null
w: -0.7
reward: soft
w_below: 0.0
w_above: -1.0
max_cost: null
trials: 2
epochs: 1
batch_size: 64
lr: 0.003
optimizer: adamw
schedule: cosine
seed: 3
sampler: tpe
pruner: quartile
dataset: digits
data_dir: null
resolution: null
evaluator: train
top_k: 5
device: auto
latency_device: cpu
workers: 1
backend: optuna
out: {out}
ray_address: null
cpus_per_trial: 1.0
gpus_per_trial: 0.0
concurrent: 1
"""


def test_an_old_flat_config_yaml_resumes(tiny_space, tmp_path):
    out = tmp_path / "run"
    first = run_search([f"space={tiny_space}", "trials=2", "target_flops=2M", "epochs=1", "batch_size=64", "seed=3",
                        f"out={out}"], progress=False)
    assert len(first.records) == 2
    (out / "config.yaml").write_text(OLD_CONFIG.format(space=tiny_space, out=out))
    resumed = run_search([f"out={out}", "trials=3"], progress=False)
    assert resumed.resumed and len(resumed.records) == 3
    assert (resumed.config.train.epochs, resumed.config.train.batch_size, resumed.config.seed) == (1, 64, 3)
    rewritten = yaml.safe_load((out / "config.yaml").read_text())
    assert rewritten["epochs"] == 1 and rewritten["momentum"] == 0.9 and rewritten["trials"] == 3
