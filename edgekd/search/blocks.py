"""A candidate network as the blocks it is made of (stem, each stage's blocks, last conv, head).

Latency lookup tables (Once-for-All, nn-Meter) time each distinct block once, alone, with the
input shape it gets inside the network; a network's latency is then predicted from its blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from edgekd.models.layers import classifier_head, conv_bn
from edgekd.models.mobilenet import InvertedResidual
from edgekd.models.resnet import BasicBlock

BlockOp = Literal["conv_bn", "basic", "inverted_residual", "head"]
"""``conv_bn``: conv → BN → ReLU; ``basic``: ResNet basic block; ``inverted_residual``:
MobileNetV2 block; ``head``: global average pooling → flatten → linear."""


@dataclass(frozen=True)
class Block:
    """One block of a candidate with the shape of its input.

    Attributes:
        op: What the block is.
        in_channels: Channels of its input.
        out_channels: Channels of its output (classes for ``head``).
        kernel: Kernel size of its spatial convolutions (1 for ``head``).
        stride: Stride of the block (1 or 2).
        height: Height of its input.
        width: Width of its input.
        expansion: Hidden-channel multiplier of an inverted residual (1 otherwise).
    """

    op: BlockOp
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    height: int
    width: int
    expansion: int = 1

    @property
    def signature(self) -> str:
        """The lookup-table key: op, channels, kernel, stride, input size, expansion."""
        return (
            f"{self.op}:c{self.in_channels}-{self.out_channels}:k{self.kernel}:s{self.stride}"
            f":hw{self.height}x{self.width}:e{self.expansion}"
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the block's input."""
        return (self.in_channels, self.height, self.width)

    @property
    def keeps_shape(self) -> bool:
        """Its output has its input's shape, so copies of it can run one after another."""
        return self.op != "head" and self.stride == 1 and self.in_channels == self.out_channels

    def output_size(self) -> tuple[int, int]:
        """Height and width of the block's output ("same" padding, so ``ceil(size / stride)``)."""
        return (self.height - 1) // self.stride + 1, (self.width - 1) // self.stride + 1

    def build(self) -> nn.Module:
        """The block as a module, built the way its model family builds it."""
        if self.op == "conv_bn":
            return conv_bn(self.in_channels, self.out_channels, self.kernel, stride=self.stride)
        if self.op == "basic":
            return BasicBlock(self.in_channels, self.out_channels, self.stride)
        if self.op == "inverted_residual":
            return InvertedResidual(self.in_channels, self.out_channels, self.stride, self.expansion, self.kernel)
        return classifier_head(self.in_channels, self.out_channels)


class BlockChain:
    """Builds a network's block list front to back, tracking channels and spatial size."""

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        self.channels, self.height, self.width = input_shape
        self.blocks: list[Block] = []

    def add(self, op: BlockOp, out_channels: int, kernel: int, stride: int = 1, expansion: int = 1) -> None:
        """Append a block that takes the current shape and make its output the current shape."""
        block = Block(op, self.channels, out_channels, kernel, stride, self.height, self.width, expansion)
        self.blocks.append(block)
        self.channels = out_channels
        self.height, self.width = block.output_size()
