import os

import pytest

os.environ.setdefault("RAY_DASHBOARD_ENABLED", "0")


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
