"""The model registry and :func:`build_model`, which checks a spec's parameters first."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from edgekd.config.pipeline import ModelSpec
from edgekd.errors import ModelError
from edgekd.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
"""Model families: ``factory(num_classes, in_channels, **params) -> nn.Module``."""


def accepted_params(factory: Callable[..., nn.Module]) -> list[str]:
    """The keyword parameters of a registered factory, besides ``num_classes`` and ``in_channels``."""
    names = list(inspect.signature(factory).parameters)
    return names[2:]


def build_model(spec: ModelSpec, num_classes: int, in_channels: int) -> nn.Module:
    """Build a registered model family.

    Args:
        spec: The family's registered name and its parameters.
        num_classes: Number of output logits.
        in_channels: Channels of the input images (1 for grey, 3 for RGB).

    Returns:
        A freshly initialised module (the caller seeds torch for reproducibility).

    Raises:
        UnknownNameError: ``spec.name`` is not registered (the message lists close matches).
        ModelError: A parameter is unknown or has an invalid value; the message names the
            accepted parameters or the valid form.
    """
    factory = MODELS.get(spec.name)
    accepted = accepted_params(factory)
    unknown = [name for name in spec.params if name not in accepted]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ModelError(
            f"model {spec.name}: unknown parameter{plural} {', '.join(repr(n) for n in unknown)}"
            f" (accepted: {', '.join(accepted) or 'none'})"
        )
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"model {spec.name}: {name} must be an integer >= 1, got {value!r}")
    try:
        return factory(num_classes, in_channels, **spec.params)
    except ValueError as exc:
        raise ModelError(f"model {spec.name}: {exc}") from exc
