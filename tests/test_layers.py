"""Layers: the spec, cost and space modules never import torch (they run where torch is not wanted)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("modules", ["nas.spec, nas.cost, nas.space", "nas", "nas.zoo, nas.scale, nas.info"])
def test_torch_free_modules_import_no_torch(modules):
    code = f"import sys\nimport {modules}\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_block_kind_has_one_torch_module():
    from nas import spec
    from nas.blocks import BLOCK_MODULES

    assert set(BLOCK_MODULES) == set(spec.BLOCK_KINDS.values())
