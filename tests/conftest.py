import os
import tempfile

import pytest

os.environ.setdefault("RAY_DASHBOARD_ENABLED", "0")
os.environ.setdefault("NAS_CACHE", tempfile.mkdtemp(prefix="nas-test-cache-"))  # latency tables, locks: not ~/.cache


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests train and time many tiny models: on a small shared CPU one thread is faster and steadier."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_spec_dict():
    """A small valid spec dict covering a stem, two kinds of stage and a head."""
    return {
        "name": "tiny",
        "resolution": 32,
        "num_classes": 10,
        "stem": [{"block": "conv", "out_channels": 16, "kernel": 3, "stride": 2, "activation": "swish"}],
        "stages": [
            {"block": "mbconv", "repeats": 2, "kernel": 3, "stride": 1, "expansion": 3, "out_channels": 16,
             "se_ratio": 0.25},
            {"block": "separable", "repeats": 1, "kernel": 5, "stride": 2, "out_channels": 24, "activation": "hswish"},
        ],
        "head": {"channels": 64, "activation": "swish", "dropout": 0.1},
    }


TINY_SPACE = """
name: tiny
description: A small MBConv space for fast tests (target 2M FLOPs).
# Its proxy trains on digits at 8 px unless a test says otherwise: a second an epoch, where nas's default
# (Fashion-MNIST at 28 px) would take a dozen.
proxy_training: {dataset: digits}
spec:
  resolution: 32
  num_classes: 10
  stem: [{block: conv, out_channels: 16, kernel: 3, stride: 2, activation: swish}]
  head: {channels: 64, activation: swish}
per_stage:
  block: [mbconv, separable]
  kernel: [3, 5]
  expansion: [3, 6]
  channel_scale: [0.75, 1.0, 1.5]
fixed_per_stage: {activation: swish}
skeleton:
  - {out_channels: 16, repeats: 1, stride: 1}
  - {out_channels: 24, repeats: 2, stride: 2}
  - {out_channels: 32, repeats: 1, stride: 2}
"""


@pytest.fixture
def tiny_space(tmp_path):
    """Path to a small search space YAML whose candidates train on digits, in about a second per epoch."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path
