"""The CIFAR ResNet: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition",
CVPR 2016 (arXiv:1512.03385), section 4.2."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.models.build import MODELS
from edgekd.models.layers import classifier_head, conv_bn, init_weights
from edgekd.models.params import check_int


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 conv + BN projection when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(in_channels, out_channels, 3, stride=stride)
        self.conv2 = conv_bn(out_channels, out_channels, 3, relu=False)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = conv_bn(in_channels, out_channels, 1, stride=stride, relu=False)
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


@MODELS.register("resnet_cifar")
class ResNetCifar(nn.Module):
    """ResNet for small images (He et al., 2016): a 3x3 stem, three stages of ``n`` basic
    blocks with ``width``, ``2*width`` and ``4*width`` channels (stride 2 between stages),
    global average pooling and a linear classifier; ``depth = 6n + 2``.

    Teachers, assistants and students are one family, e.g. ``depth=20, width=32`` for a
    teacher and ``depth=8, width=8`` for a student.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        depth: Number of weighted layers, 6n+2 (8, 14, 20, 32, 44, 56, 110, ...).
        width: Channels of the first stage.
    """

    def __init__(self, num_classes: int, in_channels: int, depth: int = 20, width: int = 16) -> None:
        super().__init__()
        depth = check_int("depth", depth, minimum=0)
        width = check_int("width", width)
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}"
            )
        blocks_per_stage = (depth - 2) // 6
        self.stem = conv_bn(in_channels, width, 3)
        stages = []
        channels = width
        for index, stage_channels in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(channels, stage_channels, stride))
                channels = stage_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = classifier_head(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
