"""Model size and compute: parameters and multiply-accumulates."""

from __future__ import annotations

import math

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not), without buffers."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of the convolutions and linear layers for one sample.

    Runs the model once on a zeros tensor of shape ``(1, *input_shape)`` in eval mode under
    ``torch.no_grad`` with forward hooks on every ``Conv1d/2d/3d`` and ``Linear``; a conv
    costs ``output elements x in_channels / groups x kernel elements``, a linear layer
    ``output elements x in_features``. The hooks and each submodule's train/eval mode are
    restored afterwards. Other ops (batch norm, activations, pooling) are not counted, nor
    are layers the hooks cannot see (TorchScript or ``torch.export`` graphs count 0).

    Args:
        model: The module to measure.
        input_shape: ``(channels, height, width)`` of one input.

    Returns:
        The number of multiply-accumulates.
    """
    total = 0

    def conv_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)

    def linear_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    modes = {module: module.training for module in model.modules()}
    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return total
