"""`nas train`: the full recipe on real data (digits), its outputs, an exact resume after SIGKILL, bad inputs."""

import csv
import itertools
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from nas.build import build_model
from nas.cli import main
from nas.evaluate.data import load_dataset
from nas.evaluate.train import accuracy
from nas.spec import load

OUTPUTS = ("spec.yaml", "recipe.yaml", "checkpoint.pt", "metrics.csv", "curves.png", "model.pt", "model_ema.pt")


@pytest.fixture
def tiny_yaml(tmp_path, tiny_spec_dict):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_spec_dict))
    return path


def rows(folder):
    with open(folder / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_two_epochs_on_digits_beat_chance_and_write_every_output(tiny_yaml, tmp_path, capsys):
    out = tmp_path / "trained"
    assert main(["train", str(tiny_yaml), "dataset=digits", "epochs=2", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "torch threads 1" in printed
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0 and (out / name).stat().st_mode & 0o777 == 0o644, name
    metrics = rows(out)
    assert [int(r["epoch"]) for r in metrics] == [1, 2]
    top1, ema_top1 = float(metrics[-1]["top1"]), float(metrics[-1]["ema_top1"])
    assert top1 > 0.3 and ema_top1 > 0.3  # chance is 0.1 on ten digits
    assert f"{top1:.4f} (raw), {ema_top1:.4f} (EMA)" in printed
    assert float(metrics[0]["train_loss"]) > float(metrics[1]["train_loss"])

    # model.pt is a plain state_dict of the spec beside it, and scores what was printed.
    spec = load(out / "spec.yaml")
    assert spec.num_classes == 10 and spec.resolution == 8
    data = load_dataset("digits", seed=0)
    for weights, expected in (("model.pt", top1), ("model_ema.pt", ema_top1)):
        model = build_model(spec)
        model.load_state_dict(torch.load(out / weights, weights_only=True))
        assert abs(accuracy(model, data.test_x, data.test_y) - expected) <= 2 / len(data.test_y)

    # The finished folder given as SPEC resumes with nothing left to do and reports the same numbers.
    assert main(["train", str(out)]) == 0
    assert f"resumed after epoch 2: {top1:.4f} (raw)" in capsys.readouterr().out


def test_killed_run_resumes_to_the_same_result(tiny_yaml, tmp_path, capsys):
    args = ["dataset=digits", "epochs=3", "seed=3"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["train", str(tiny_yaml), *args, f"out={whole}", "--quiet"]) == 0

    process = subprocess.Popen([sys.executable, "-m", "nas.cli", "train", str(tiny_yaml), *args, f"out={killed}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.monotonic() + 60
    # metrics.csv is written right after the first checkpoint; then the second epoch starts.
    while not (killed / "metrics.csv").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    saved = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert 1 <= len(saved["history"]) < 3 and not (killed / "model.pt").exists()

    capsys.readouterr()
    assert main(["train", str(killed), "--quiet"]) == 0
    assert "resumed after epoch" in capsys.readouterr().out
    def without_time(table):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in table]

    assert without_time(rows(killed)) == without_time(rows(whole))  # the same losses and accuracies, every epoch
    for weights in ("model.pt", "model_ema.pt"):
        a, b = (torch.load(folder / weights, weights_only=True) for folder in (whole, killed))
        assert all(torch.equal(a[k], b[k]) for k in a), weights


def one_line_error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_bad_inputs_give_one_line_and_exit_2(tiny_yaml, tmp_path, capsys):
    out = f"out={tmp_path / 'never'}"
    assert "did you mean 'epochs'" in one_line_error(capsys, ["train", str(tiny_yaml), "epoch=2", out])
    assert "lr" in one_line_error(capsys, ["train", str(tiny_yaml), "lr=fast", out])
    assert "allowed: adamw, sgd" in one_line_error(capsys, ["train", str(tiny_yaml), "optimizer=rmsprop", out])
    assert "missing.yaml" in one_line_error(capsys, ["train", str(tmp_path / "missing.yaml"), out])
    assert "did you mean 'efficientnet-" in one_line_error(capsys, ["train", "efficientnet-b9x", out])
    assert "imagenet" in one_line_error(capsys, ["train", str(tiny_yaml), "dataset=imagenet", out])
    assert "batch_size" in one_line_error(capsys, ["train", str(tiny_yaml), "dataset=digits", "batch_size=5000", out])
    assert not (tmp_path / "never").exists()


def test_a_folder_resumes_only_under_its_own_settings(tiny_yaml, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny_yaml), "dataset=digits", "epochs=1", f"out={out}", "--quiet"]) == 0
    line = one_line_error(capsys, ["train", str(tiny_yaml), "dataset=digits", "epochs=1", "lr=0.05", f"out={out}"])
    assert "lr" in line and "0.1" in line and "another out=" in line
    assert yaml.safe_load((out / "recipe.yaml").read_text())["lr"] == 0.1  # left as it was


def test_a_data_set_with_one_class(tiny_yaml, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "images" / "cats").mkdir(parents=True)
    for i in range(6):
        Image.new("RGB", (12, 12), (i * 40, 0, 0)).save(tmp_path / "images" / "cats" / f"{i}.png")
    line = one_line_error(capsys, ["train", str(tiny_yaml), f"dataset=imagefolder:{tmp_path / 'images'}",
                                   f"out={tmp_path / 'never'}"])
    assert "fewer than 2 classes" in line


def test_random_crop_flip_moves_and_mirrors_whole_images():
    from nas.evaluate.recipe import random_crop_flip

    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1  # no pixel is 0 (the padding)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == x.shape
    assert torch.equal(out, random_crop_flip(x, torch.Generator().manual_seed(0), padding=2))  # the generator decides
    for image, moved in zip(x, out):
        # Each output is the image (or its mirror) shifted by at most 2 pixels: some window of it matches.
        padded = [torch.nn.functional.pad(candidate, (2, 2, 2, 2)) for candidate in (image, image.flip(2))]
        assert any(torch.equal(p[:, i:i + 6, j:j + 6], moved) for p in padded for i in range(5) for j in range(5))
    many = random_crop_flip(x.repeat(64, 1, 1, 1), torch.Generator().manual_seed(1), padding=2)
    assert len({tuple(m.flatten().tolist()) for m in many[::2]}) > 5  # not one fixed shift


def test_schedule_warms_up_then_decays_to_zero():
    from nas.evaluate.recipe import lr_factor

    values = [lr_factor(step, 100, 10) for step in range(101)]
    assert values[0] == 0.1 and values[9] == 1.0 and values[10] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(values[10:])) and values[100] == pytest.approx(0.0)


def test_adamw_with_augmentation_learns(tiny_spec_dict, tmp_path):
    """The natural-image path (crop and flip) and AdamW, on digits marked as natural images for the test."""
    from dataclasses import replace

    from nas.evaluate.recipe import Recipe, train_with_recipe
    from nas.evaluate.train import proxy_spec
    from nas.spec import from_dict

    data = load_dataset("digits", seed=0)
    data.natural_images = True
    recipe = Recipe(epochs=2, batch_size=32, optimizer="adamw", lr=0.003, weight_decay=0.05)
    said = []
    result = train_with_recipe(proxy_spec(from_dict(tiny_spec_dict), data), data, recipe, tmp_path / "c.pt",
                               say=said.append)
    assert len(said) == 2 and said[0].startswith("epoch 1/2: loss")  # plain lines: stdout is not a terminal
    assert result.top1 > 0.3 and result.ema_top1 > 0.2
    assert replace(recipe, device="cpu", threads=2).what() == recipe.what()  # where it runs is not what it is


def test_a_family_trains_member_by_member_and_resumes(tiny_yaml, tmp_path, capsys):
    family = tmp_path / "family"
    assert main(["scale", "--phi", "1..2", "--base", str(tiny_yaml), "--alpha", "1.2", "--beta", "1.1",
                 "--gamma", "1.15", "--out", str(family), "--quiet"]) == 0
    assert main(["train", str(family), "dataset=digits", "epochs=1", "--quiet"]) == 0
    first = (family / "family_accuracy.csv").read_text()
    table = list(csv.DictReader(first.splitlines()))
    assert [r["name"] for r in table] == ["tiny-phi1", "tiny-phi2"] and (family / "family_accuracy.png").exists()
    assert int(table[0]["flops_multiply_adds"]) < int(table[1]["flops_multiply_adds"])
    assert int(table[0]["train_resolution"]) == 8 < int(table[1]["train_resolution"])  # grows with the member's

    # As if killed during the second member: the first is not trained again, the second is, to the same result.
    done = family / "train" / "tiny-phi1" / "checkpoint.pt"
    stamp = done.stat().st_mtime_ns
    for path in (family / "train" / "tiny-phi2").iterdir():
        path.unlink()
    (family / "family_accuracy.csv").unlink()
    assert main(["train", str(family), "dataset=digits", "epochs=1", "--quiet"]) == 0
    assert done.stat().st_mtime_ns == stamp and (family / "family_accuracy.csv").read_text() == first
    assert "out" in one_line_error(capsys, ["train", str(family), f"out={tmp_path / 'x'}"])


def test_a_search_run_trains_its_best_on_its_own_data(tiny_yaml, tmp_path, capsys):
    run = tmp_path / "run"  # the two files of a search run that nas train reads
    run.mkdir()
    (run / "best.yaml").write_text(tiny_yaml.read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({"dataset": "digits", "resolution": 12, "seed": 1, "trials": 4}))
    assert main(["train", str(run), "epochs=1", "--quiet"]) == 0
    assert load(run / "train" / "spec.yaml").resolution == 12
    assert yaml.safe_load((run / "train" / "recipe.yaml").read_text())["seed"] == 1
    assert str(run / "train" / "model.pt") in capsys.readouterr().out
    # Without resolution=, the side the search's proxy trained at (the space's proxy_resolution, stored with it).
    other = tmp_path / "other"
    other.mkdir()
    (other / "best.yaml").write_text(tiny_yaml.read_text())
    (other / "config.yaml").write_text(yaml.safe_dump({"dataset": "digits", "resolution": None,
                                                       "proxy_resolution": 16}))
    assert main(["train", str(other), "epochs=1", "--quiet"]) == 0
    assert load(other / "train" / "spec.yaml").resolution == 16


def test_train_help_lists_every_key_with_its_default(capsys):
    from nas.settings.recipe import TRAIN_RUN_KEYS, Recipe

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    for name, key in TRAIN_RUN_KEYS.items():
        assert f"  {name}={key.shown_default}\n" in shown, name
    assert "  epochs=30\n" in shown and "  lr=0.1\n" in shown and "  optimizer=sgd\n" in shown
    assert set(TRAIN_RUN_KEYS) >= {f for f in Recipe.__dataclass_fields__}  # every field of the recipe is a key


def test_scale_train_trains_every_member_with_the_single_dimension_ones(tiny_yaml, tmp_path, capsys):
    family = tmp_path / "family"
    assert main(["scale", "--phi", "1", "--base", str(tiny_yaml), "--alpha", "1.2", "--beta", "1.1", "--gamma",
                 "1.15", "--out", str(family), "--quiet", "--compare", "single", "--train", "dataset=digits",
                 "epochs=1", "batch_size=64"]) == 0
    table = list(csv.DictReader((family / "family_accuracy.csv").read_text().splitlines()))
    assert [(r["scaling"], r["name"]) for r in table] == [
        ("compound", "tiny-phi1"), ("width", "tiny-phi1-width"), ("depth", "tiny-phi1-depth"),
        ("resolution", "tiny-phi1-resolution")]
    for row in table:
        assert float(row["top1"]) > 0.2 and (family / row["folder"] / "model.pt").exists(), row["name"]
    by_name = {r["name"]: r for r in table}
    # digits are 8 px for the 32-px base: the resolution-only member trains larger, the width-only one does not
    assert int(by_name["tiny-phi1-width"]["train_resolution"]) == 8
    assert int(by_name["tiny-phi1-resolution"]["train_resolution"]) > 8
    assert (family / "family_accuracy.png").stat().st_size > 0 and "tiny-phi1-depth" in capsys.readouterr().out
    assert "did you mean 'epochs'" in one_line_error(capsys, ["scale", "--phi", "1", "--base", str(tiny_yaml),
                                                              "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15",
                                                              "--out", str(tmp_path / "f2"), "--train", "epoch=1"])
    assert "no out= with a family" in one_line_error(capsys, ["scale", "--phi", "1", "--base", str(tiny_yaml),
                                                              "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15",
                                                              "--out", str(tmp_path / "f2"), "--train", "out=x"])
    assert not (tmp_path / "f2").exists()
