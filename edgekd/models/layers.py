"""Building blocks shared by the model families."""

from __future__ import annotations

from torch import nn


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    relu: bool = True,
) -> nn.Sequential:
    """Conv2d (no bias, "same" padding) → BatchNorm2d → ReLU (unless ``relu`` is False)."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def classifier_head(in_channels: int, num_classes: int) -> nn.Sequential:
    """Global average pooling → flatten → linear: any input size gives ``num_classes`` logits."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(in_channels, num_classes))


def init_weights(model: nn.Module) -> None:
    """He (fan-out) initialisation for convolutions, identity for batch norms."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
