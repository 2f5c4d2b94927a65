"""The distillation loss library: every method registered by name, each citing its paper, and
:func:`build_losses`, which turns YAML loss specs into loss modules.

| kind | methods |
|---|---|
| logit | ``hinton``, ``tf_kd``, ``noisy_teacher`` |
| feature | ``fitnets``, ``at``, ``fsp``, ``nst``, ``ft``, ``ab``, ``ofd``, ``vid`` |
| relation | ``rkd``, ``sp``, ``cc``, ``pkt``, ``crd`` |

Born-again networks are a chain option (``stages.distill.generations``), not a loss: see
:data:`BORN_AGAIN_PAPER`.
"""

from __future__ import annotations

import inspect

from edgekd.config import LossSpec
from edgekd.distill import boundary, crd, factor, feature, logit, relation  # noqa: F401  (register the losses)
from edgekd.distill.base import LOSSES, DistillLoss, KDInputs, PreTrainer
from edgekd.distill.logit import HintonKD
from edgekd.errors import ConfigError
from edgekd.registry import UnknownNameError

__all__ = ["BORN_AGAIN_PAPER", "LOSSES", "DistillLoss", "HintonKD", "KDInputs", "PreTrainer", "build_losses"]

BORN_AGAIN_PAPER = "Furlanello, Lipton, Tschannen, Itti & Anandkumar, Born-Again Neural Networks, ICML 2018"
"""Born-again networks are a chain option (``stages.distill.generations``), cited by ``edgekd methods``."""


def build_losses(specs: list[LossSpec], where: str) -> list[tuple[float, DistillLoss]]:
    """Instantiate ``specs`` as (weight, loss) pairs.

    Args:
        specs: The YAML loss specs.
        where: The config path of the list's owner (``stages.distill``), for messages.

    Returns:
        One (weight, loss) per spec; a loss's messages name it as ``<where>.losses.<i> (<name>)``.

    Raises:
        ConfigError: Unknown name (close matches listed), unknown or invalid parameter, or taps
            given to a logit loss.
    """
    built = []
    for i, spec in enumerate(specs):
        try:
            cls = LOSSES.get(spec.name)
        except UnknownNameError as exc:
            raise ConfigError(f"{where}.losses.{i}.name: {exc}") from None
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(spec.params) - set(accepted))
        if unknown:
            raise ConfigError(
                f"{where}.losses.{i}: loss {spec.name!r} has no parameter {unknown[0]!r}"
                f" (accepted: {', '.join(accepted) or 'none'})"
            )
        try:
            loss = cls(**spec.params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.losses.{i}: loss {spec.name!r}: {exc}") from None
        loss.label = f"{where}.losses.{i} ({spec.name})"
        if spec.taps is not None:
            if not loss.needs_features:
                raise ConfigError(f"{loss.label}: a logit loss reads no layers; remove its taps")
            loss.taps = (list(spec.taps.student), list(spec.taps.teacher))
        loss.adapters = spec.adapters
        built.append((spec.weight, loss))
    return built
