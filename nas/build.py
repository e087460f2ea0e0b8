"""Spec -> plain PyTorch model. The builder walks the resolved blocks, so channels are tracked once, in spec."""

from __future__ import annotations

import torch
from torch import nn

from . import spec as spec_mod
from .blocks import build_block
from .blocks.layers import ConvNormAct, activation


class Head(nn.Module):
    """The three head kinds of spec.Head, each a few explicit layers."""

    def __init__(self, head: spec_mod.Head, cin: int, channels: int, num_classes: int):
        super().__init__()
        self.kind = head.kind
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(head.dropout)
        self.conv: nn.Module
        self.classifier: nn.Module
        if head.kind == "conv_pool_linear":
            self.conv = ConvNormAct(cin, channels, 1, act=head.activation) if channels else nn.Identity()
            self.classifier = nn.Linear(channels or cin, num_classes)
        elif head.kind == "pool_conv_linear":
            self.conv = nn.Sequential(nn.Conv2d(cin, channels, 1, bias=False), activation(head.activation, channels))
            self.classifier = nn.Linear(channels, num_classes)
        else:  # conv_classifier: the classifier is a 1x1 conv before pooling (SqueezeNet)
            self.conv = nn.Identity()
            self.classifier = ConvNormAct(cin, num_classes, 1, act=head.activation, norm=False, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv_pool_linear":
            x = self.pool(self.conv(x)).flatten(1)
            return self.classifier(self.dropout(x))
        if self.kind == "pool_conv_linear":
            x = self.conv(self.pool(x)).flatten(1)
            return self.classifier(self.dropout(x))
        return self.pool(self.classifier(self.dropout(x))).flatten(1)


class Network(nn.Module):
    """Blocks in order, then the head. ``spec_yaml`` keeps the architecture with the weights."""

    def __init__(self, spec: spec_mod.Spec):
        super().__init__()
        resolved = spec_mod.resolve(spec)
        self.blocks = nn.ModuleList(
            build_block(rb.block, rb.in_channels, rb.drop_path) for rb in resolved.blocks
        )
        self.head = Head(spec.head, resolved.head_in_channels, resolved.head_channels, spec.num_classes)
        self.spec_yaml = spec_mod.dumps(spec)
        self._set_batch_norm(spec.batch_norm_eps, spec.batch_norm_momentum)
        self._init_weights()

    def _set_batch_norm(self, eps: float, momentum: float) -> None:
        # Set here, once, rather than threaded through every block's constructor: every batch norm of the
        # network follows the spec's (eps, momentum), PyTorch's momentum convention.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = eps, momentum

    def _init_weights(self) -> None:
        # EfficientNet / torchvision: He (fan-out) for convs, uniform 1/sqrt(fan_out) for the classifier.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.out_features ** 0.5
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)
        # Residual blocks start as the identity (Goyal et al., 2017; timm's zero_init_last): their last
        # batch norm's scale is zero. Deep nets then train from the first step, which short proxy runs need.
        for m in self.modules():
            zero_init_last = getattr(m, "zero_init_last", None)
            if callable(zero_init_last) and m is not self:
                zero_init_last()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        image = x
        for block in self.blocks:
            x = block(x, image) if getattr(block, "takes_image", False) else block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(spec: spec_mod.Spec) -> Network:
    """Build ``spec`` into an nn.Module (raises SpecError if the spec cannot be built)."""
    return Network(spec)
