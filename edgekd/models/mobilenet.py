"""MobileNetV2-style networks: Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted
Residuals and Linear Bottlenecks", CVPR 2018 (arXiv:1801.04381)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgekd.models.build import MODELS
from edgekd.models.layers import classifier_head, conv_bn, init_weights
from edgekd.models.params import check_int, check_ints, check_kernel_size, check_positive_float


def round_channels(channels: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), never more than
    10% below ``channels`` (MobileNetV2's rule)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


class InvertedResidual(nn.Module):
    """1x1 expansion conv (skipped when ``expansion`` is 1) → depthwise kxk conv → linear 1x1
    projection; a residual connection when the stride is 1 and the channels do not change."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, expansion: int, kernel_size: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn(in_channels, hidden, 1))
        layers.append(conv_bn(hidden, hidden, kernel_size, stride=stride, groups=hidden))
        layers.append(conv_bn(hidden, out_channels, 1, relu=False))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


@MODELS.register("mobilenet")
class MobileNet(nn.Module):
    """A small MobileNetV2 (Sandler et al., 2018) for small images: a 3x3 stem (stride 1),
    stages of inverted residual blocks, a 1x1 conv to ``last_channels``, global average
    pooling and a linear classifier. ReLU replaces ReLU6 (it quantizes as well and exports
    to one ONNX node).

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        width_mult: Multiplies ``channels``; each result is rounded to a multiple of 8 (min 8).
        expansion: Hidden channels of a block = its input channels x ``expansion``.
        kernel_size: Kernel of the depthwise convolutions (odd).
        blocks: Number of blocks per stage; the first block of every stage after the first
            has stride 2.
        channels: Output channels per stage (same length as ``blocks``); the stem has
            ``channels[0]``.
        last_channels: Channels of the 1x1 conv before pooling (not scaled by ``width_mult``).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        width_mult: float = 1.0,
        expansion: int = 6,
        kernel_size: int = 3,
        blocks: Sequence[int] = (1, 2, 2),
        channels: Sequence[int] = (16, 24, 32),
        last_channels: int = 128,
    ) -> None:
        super().__init__()
        width_mult = check_positive_float("width_mult", width_mult)
        expansion = check_int("expansion", expansion)
        kernel_size = check_kernel_size(kernel_size)
        blocks = check_ints("blocks", blocks)
        channels = check_ints("channels", channels)
        last_channels = check_int("last_channels", last_channels)
        if len(blocks) != len(channels):
            raise ValueError(
                "blocks and channels must have the same length (one entry per stage),"
                f" got {len(blocks)} and {len(channels)}"
            )
        widths = [round_channels(c * width_mult) for c in channels]
        self.stem = conv_bn(in_channels, widths[0], 3)
        stages = []
        current = widths[0]
        for index, (count, width) in enumerate(zip(blocks, widths, strict=True)):
            layers = []
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                layers.append(InvertedResidual(current, width, stride, expansion, kernel_size))
                current = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.last = conv_bn(current, last_channels, 1)
        self.head = classifier_head(last_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.last(self.stages(self.stem(x))))
