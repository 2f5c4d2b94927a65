"""A plain convolutional network, and the tiny model the tests use."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from edgekd.models.build import MODELS
from edgekd.models.layers import classifier_head, conv_bn, init_weights
from edgekd.models.params import check_ints, check_kernel_size


@MODELS.register("plain_cnn")
class PlainCNN(nn.Module):
    """Conv-BN-ReLU layers without shortcuts (stride 1 for the first, stride 2 for every
    later one), global average pooling and a linear classifier.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        channels: Output channels of each conv layer.
        kernel_size: Kernel of every conv layer (odd).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        channels = check_ints("channels", channels)
        kernel_size = check_kernel_size(kernel_size)
        self.stem = conv_bn(in_channels, channels[0], kernel_size)
        self.stages = nn.Sequential(
            *(conv_bn(a, b, kernel_size, stride=2) for a, b in pairwise(channels))
        )
        self.head = classifier_head(channels[-1], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@MODELS.register("test_tiny")
class TinyNet(nn.Module):
    """One 3x3 conv-BN-ReLU with 4 channels, global average pooling and a linear layer:
    the fastest model to train, export and profile in tests.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
    """

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, 4, 3)
        self.head = classifier_head(4, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))
