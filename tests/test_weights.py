"""Weights from another implementation: paired by position, checked shape by shape (nas.weights)."""

import pytest
import torch
import yaml
from torch import nn

from nas.build import build_model
from nas.cli import main
from nas.errors import UserError
from nas.spec import from_dict
from nas.weights import import_weights, transfer_by_order
from nas.zoo import zoo_spec

# A small MobileNetV2 in nas's spec format, and below the same network written by hand in torchvision's
# style (features / conv / classifier, other module names, the residual decided inside the block).
HAND_SPEC = {
    "name": "hand", "resolution": 32, "num_classes": 10,
    "stem": [{"block": "conv", "out_channels": 16, "kernel": 3, "stride": 2, "activation": "relu6"}],
    "stages": [
        {"block": "mbconv", "repeats": 1, "kernel": 3, "stride": 1, "expansion": 1, "out_channels": 8,
         "activation": "relu6"},
        {"block": "mbconv", "repeats": 2, "kernel": 3, "stride": 2, "expansion": 6, "out_channels": 16,
         "activation": "relu6"},
    ],
    "head": {"kind": "conv_pool_linear", "channels": 64, "activation": "relu6", "dropout": 0.2},
}


def conv_bn(cin, cout, kernel, stride=1, groups=1, relu6=True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([nn.ReLU6()] if relu6 else []))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        layers = [conv_bn(cin, mid, 1)] if expand != 1 else []
        self.conv = nn.Sequential(*layers, conv_bn(mid, mid, 3, stride, groups=mid), conv_bn(mid, cout, 1, relu6=False))
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class HandWrittenMobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_bn(3, 16, 3, 2), InvertedResidual(16, 8, 1, 1),
                                      InvertedResidual(8, 16, 2, 6), InvertedResidual(16, 16, 1, 6), conv_bn(16, 64, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def randomise(model: nn.Module) -> nn.Module:
    """Every parameter and batch-norm statistic random, so a tensor that lands in the wrong place shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif tensor.is_floating_point():
                tensor.normal_(0, 0.3)
    return model.eval()


def test_hand_written_equivalent_gives_identical_outputs():
    hand = randomise(HandWrittenMobileNetV2())
    ours = build_model(from_dict(HAND_SPEC)).eval()
    hand_names = [n for n in hand.state_dict() if not n.endswith("num_batches_tracked")]
    our_names = [n for n in ours.state_dict() if not n.endswith("num_batches_tracked")]
    assert len(hand_names) == len(our_names) and not set(hand_names) & set(our_names)  # nothing matches by name
    x = torch.randn(4, 3, 32, 32)
    assert not torch.allclose(ours(x), hand(x))
    ours.load_state_dict(transfer_by_order(hand.state_dict(), ours))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hand(x), rtol=1e-6, atol=1e-6)


def test_zoo_spec_from_a_renamed_copy():
    source = randomise(build_model(zoo_spec("mobilenetv2-1.0")))
    renamed = {f"layer{i}.{name.rsplit('.', 1)[-1]}": t for i, (name, t) in enumerate(source.state_dict().items())}
    target = build_model(zoo_spec("mobilenetv2-1.0")).eval()
    target.load_state_dict(transfer_by_order(renamed, target))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


def test_first_mismatch_names_both_tensors_and_shapes():
    source = build_model(zoo_spec("mobilenetv2-1.0")).state_dict()
    with pytest.raises(UserError) as caught:
        transfer_by_order(source, build_model(zoo_spec("mnasnet-b1")))
    message = str(caught.value)
    assert "\n" not in message
    # MobileNetV2's first block has no expand conv; MnasNet-B1's is a separable block with its own shapes.
    assert "source blocks." in message and "blocks." in message.split("does not fit")[1]
    assert message.count("x") >= 2 and "(" in message


def test_extra_tensors_are_named():
    small = build_model(from_dict(HAND_SPEC))
    state = dict(small.state_dict())
    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(UserError, match=r"first unmatched is the source's extra.weight \(3\)"):
        transfer_by_order(state, small)


def test_weights_import_command(tmp_path, capsys):
    spec_path = tmp_path / "hand.yaml"
    spec_path.write_text(yaml.safe_dump(HAND_SPEC))
    hand = randomise(HandWrittenMobileNetV2())
    torch.save({"state_dict": hand.state_dict()}, tmp_path / "hand.pt")  # a checkpoint that wraps it
    assert main(["weights", "import", str(tmp_path / "hand.pt"), str(spec_path), "-o", str(tmp_path / "ours.pt")]) == 0
    ours = build_model(from_dict(HAND_SPEC)).eval()
    ours.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hand(x), rtol=1e-6, atol=1e-6)
    assert (tmp_path / "ours.pt").stat().st_mode & 0o777 == 0o644
    # again onto the file it wrote: "a new or writable .pt file" (it was refused as a folder "below the file")
    assert main(["weights", "import", str(tmp_path / "hand.pt"), str(spec_path), "-o", str(tmp_path / "ours.pt")]) == 0
    capsys.readouterr()
    assert main(["weights", "import", str(tmp_path / "hand.pt"), "mobilenetv2-1.0", "-o", str(tmp_path / "x.pt")]) == 2
    missing = tmp_path / "missing.pt"
    assert main(["weights", "import", str(missing), "mobilenetv2-1.0", "-o", str(tmp_path / "x.pt")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "does not fit" in errors[0] and "missing.pt" in errors[1]
    assert not (tmp_path / "x.pt").exists()


def test_import_weights_function(tmp_path):
    hand = HandWrittenMobileNetV2()
    torch.save(hand.state_dict(), tmp_path / "hand.pt")
    spec_path = tmp_path / "hand.yaml"
    spec_path.write_text(yaml.safe_dump(HAND_SPEC))
    out = import_weights(tmp_path / "hand.pt", str(spec_path), tmp_path / "out.pt")
    assert set(torch.load(out, weights_only=True)) == set(build_model(from_dict(HAND_SPEC)).state_dict())
