"""The numbers the report shows for every model: accuracy, parameters, MACs."""

from __future__ import annotations

from typing import Any

from torch import nn


def model_metrics(module: nn.Module, data, *, role: str, family: str) -> dict[str, Any]:
    from edgekd.distill import evaluate
    from edgekd.models import count_macs, count_params

    try:
        macs: int | None = count_macs(module, data.input_shape)
    except Exception:  # TorchScript and exported programs take no forward hooks
        macs = None
    return {
        "role": role,
        "family": family,
        "accuracy": evaluate(module, data.test),
        "val_accuracy": evaluate(module, data.val) if len(data.val) else None,
        "params": count_params(module),
        "macs": macs,
    }
