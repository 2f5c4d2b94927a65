"""The distillation loss library. Each loss is registered by name and cites its paper."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from edgekd.config import LossSpec
from edgekd.errors import ConfigError
from edgekd.registry import Registry

LOSSES: Registry[type[DistillLoss]] = Registry("loss")


@dataclass
class KDInputs:
    """What a loss may look at for one batch."""

    student_logits: Tensor
    teacher_logits: Tensor
    labels: Tensor
    student_features: dict[str, Tensor] = field(default_factory=dict)
    teacher_features: dict[str, Tensor] = field(default_factory=dict)


class DistillLoss(nn.Module):
    """Base class: ``forward(KDInputs) -> scalar``. ``paper`` is shown by ``edgekd methods``."""

    paper: ClassVar[str] = ""

    def forward(self, batch: KDInputs) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@LOSSES.register("hinton")
class HintonKD(DistillLoss):
    """KL divergence between temperature-softened teacher and student outputs, scaled by T².

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """

    paper: ClassVar[str] = "Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network, 2015"

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature

    def forward(self, batch: KDInputs) -> Tensor:
        t = self.temperature
        log_p_student = F.log_softmax(batch.student_logits / t, dim=1)
        log_p_teacher = F.log_softmax(batch.teacher_logits.detach() / t, dim=1)
        return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * t * t


def build_losses(specs: list[LossSpec], where: str) -> list[tuple[float, DistillLoss]]:
    """Instantiate ``specs`` as (weight, loss) pairs; bad names or params are ConfigErrors."""
    built = []
    for i, spec in enumerate(specs):
        try:
            cls = LOSSES.get(spec.name)
        except Exception as exc:
            raise ConfigError(f"{where}.losses.{i}.name: {exc}") from None
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(spec.params) - set(accepted))
        if unknown:
            raise ConfigError(
                f"{where}.losses.{i}: loss {spec.name!r} has no parameter {unknown[0]!r}"
                f" (accepted: {', '.join(accepted) or 'none'})"
            )
        try:
            built.append((spec.weight, cls(**spec.params)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.losses.{i}: loss {spec.name!r}: {exc}") from None
    return built
