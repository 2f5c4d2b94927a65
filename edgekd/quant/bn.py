"""Folding BatchNorm into the convolution before it, so that the quantized graph has no BN.

Quantizers inserted around an unfolded Conv → BN pair leave the BN in float: in ONNX Runtime
Conv and BN then stay FP32 (docs/design-notes.md, "Quantization"), and TensorRT fuses differently than the quantized
training saw. Folding first gives one Conv with a bias, quantized as one layer.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger(__name__)

_PAIRS: tuple[tuple[type[nn.Module], type[nn.Module]], ...] = (
    (nn.Conv1d, nn.BatchNorm1d),
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv3d, nn.BatchNorm3d),
)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        any(type(conv) is c and type(bn) is b for c, b in _PAIRS)
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.running_var is not None
        and conv.out_channels == bn.num_features
    )


def _fold_sequentials(model: nn.Module) -> int:
    """Fold every Conv → BN pair of adjacent children of an ``nn.Sequential`` in place; the BN
    becomes an ``nn.Identity`` (so child indices, and the state-dict keys of later children, stay)."""
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if conv is None or bn is None or not _foldable(conv, bn):
                continue
            module._modules[first] = fuse_conv_bn_eval(conv, bn)
            module._modules[second] = nn.Identity()
            folded += 1
    return folded


def _fold_traced(model: nn.Module) -> nn.Module:
    """Fold Conv → BN pairs that are not adjacent in a Sequential (``self.conv1``/``self.bn1``
    style models) by tracing the model with ``torch.fx``; the model is returned unchanged when
    it cannot be traced."""
    import torch.fx as fx

    try:
        traced = fx.symbolic_trace(model)
    except Exception as exc:  # tracing fails on data-dependent control flow
        log.info(
            "BatchNorm folding: %s cannot be traced by torch.fx (%s); leaving its BatchNorms",
            type(model).__name__,
            exc,
        )
        return model
    modules = dict(traced.named_modules())
    changed = False
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BATCHNORMS):
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        conv, bn = modules[source.target], modules[node.target]
        if not _foldable(conv, bn):
            continue
        fused = fuse_conv_bn_eval(conv, bn)
        parent_name, _, attr = source.target.rpartition(".")
        setattr(traced.get_submodule(parent_name) if parent_name else traced, attr, fused)
        modules[source.target] = fused
        node.replace_all_uses_with(source)
        traced.graph.erase_node(node)
        changed = True
    if not changed:
        return model
    traced.graph.lint()
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm that directly follows a convolution
    folded into that convolution's weight and bias.

    The edgekd families (``conv_bn`` blocks) are folded in place of their ``nn.Sequential``
    children, keeping the module tree; other models are traced with ``torch.fx``. A BatchNorm
    that follows anything but a convolution (or without running statistics) is kept.

    Args:
        model: Any module; it is not changed.

    Returns:
        The folded copy, in eval mode (the fold uses the running statistics).
    """
    folded = copy.deepcopy(model).eval()
    count = _fold_sequentials(folded)
    if remaining_batchnorms(folded):
        folded = _fold_traced(folded).eval()
    left = remaining_batchnorms(folded)
    log.debug("folded %d BatchNorm layers; %d left", count, len(left))
    return folded


def remaining_batchnorms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm modules still in ``model``."""
    return [name for name, module in model.named_modules() if isinstance(module, _BATCHNORMS)]


@torch.no_grad()
def max_abs_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Largest |a(x) − b(x)| with both models in eval mode (a check that a fold kept the function)."""
    return float((a.eval()(x) - b.eval()(x)).abs().max())
