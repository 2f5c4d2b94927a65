"""One distillation forward pass: student with gradient, teacher without, tapped features.

:class:`DistillStep` resolves every loss's taps, hooks them, runs a probe batch to learn the
feature shapes and attaches the losses (building their adapters), so that any shape problem
is a ConfigError before the first epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from edgekd.distill.base import DistillLoss, KDInputs
from edgekd.distill.features import FeatureTaps, resolve_taps

_PROBE_SAMPLES = 2


class DistillStep:
    """Runs the models for the ``losses`` and packs what they read into :class:`KDInputs`.

    Args:
        student: The model being trained.
        teacher: The frozen teacher, or ``None`` when no loss uses one.
        losses: The losses, attached here (adapters built with the current torch seed).
        probe: A few training inputs to learn the tapped shapes from.
        num_samples: Size of the training set (indices lie in ``0..num_samples-1``).

    Raises:
        ConfigError: A tap path is wrong, a model cannot be tapped, or shapes do not fit.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None, losses: Sequence[DistillLoss],
                 probe: Tensor, num_samples: int) -> None:
        self.student, self.teacher = student, teacher
        self.uses_teacher = teacher is not None and any(loss.uses_teacher for loss in losses)
        feature_losses = [loss for loss in losses if loss.needs_features]
        taps = {id(loss): resolve_taps(loss, student, teacher) for loss in feature_losses}
        self.student_taps = self.teacher_taps = None
        if feature_losses:
            self.student_taps = FeatureTaps(student, _owners(feature_losses, taps, 0), "student")
            self.teacher_taps = FeatureTaps(teacher, _owners(feature_losses, taps, 1), "teacher")
        try:
            shapes = self._probe(probe[:_PROBE_SAMPLES]) if feature_losses else ({}, {})
            for loss in losses:
                s_taps, t_taps = taps.get(id(loss), ([], []))
                loss.attach(s_taps, t_taps, [shapes[0][p] for p in s_taps], [shapes[1][p] for p in t_taps],
                            num_samples=num_samples)
        except BaseException:
            self.close()
            raise

    def _probe(self, x: Tensor) -> tuple[dict[str, torch.Size], dict[str, torch.Size]]:
        was_training = self.student.training
        self.student.eval()
        try:
            with torch.no_grad():
                features = self.inputs(x, torch.zeros(len(x), dtype=torch.long), None, teacher=True)
        finally:
            self.student.train(was_training)
        return ({k: v.shape for k, v in features.student_features.items()},
                {k: v.shape for k, v in features.teacher_features.items()})

    def inputs(self, x: Tensor, labels: Tensor, indices: Tensor | None, *, teacher: bool | None = None) -> KDInputs:
        """Run the student (with gradient) and, when needed, the teacher (without) on ``x``."""
        logits = self.student(x)
        student_features = self.student_taps.take() if self.student_taps else {}
        teacher_logits = logits.new_empty(0)
        teacher_features: dict[str, Tensor] = {}
        if self.uses_teacher if teacher is None else teacher:
            with torch.no_grad():
                teacher_logits = self.teacher(x)
            teacher_features = self.teacher_taps.take() if self.teacher_taps else {}
        return KDInputs(logits, teacher_logits, labels, student_features, teacher_features, indices)

    def close(self) -> None:
        """Remove the hooks from both models."""
        for taps in (self.student_taps, self.teacher_taps):
            if taps is not None:
                taps.close()


def _owners(losses: Sequence[DistillLoss], taps: dict[int, tuple[list[str], list[str]]], side: int) -> dict[str, str]:
    owners: dict[str, str] = {}
    for loss in losses:
        for tap in taps[id(loss)][side]:
            owners.setdefault(tap, loss.label)
    return owners
