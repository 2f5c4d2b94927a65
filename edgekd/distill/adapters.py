"""Adapters: what makes a student feature comparable with a teacher feature of another shape.

A 1x1 conv + BN regressor (feature maps) or a linear regressor (vectors) maps the student's
channels to the teacher's; average pooling brings the larger of two feature maps down to the
smaller's size. Adapters live in the loss module: they train with the student (the trainer
optimizes loss parameters) and are not part of the exported student.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekd.errors import ConfigError


def regressor(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module:
    """A module mapping a student feature to the teacher's channels (identity when equal).

    Args:
        student_shape: ``(B, C, H, W)`` or ``(B, D)``.
        teacher_shape: Same rank as ``student_shape``.
    """
    c_s, c_t = student_shape[1], teacher_shape[1]
    if c_s == c_t:
        return nn.Identity()
    if len(student_shape) == 4:
        return nn.Sequential(nn.Conv2d(c_s, c_t, 1, bias=False), nn.BatchNorm2d(c_t))
    return nn.Linear(c_s, c_t)


def pool_to_common_size(student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool whichever feature map is larger to the smaller height and width."""
    if student.dim() != 4 or student.shape[-2:] == teacher.shape[-2:]:
        return student, teacher
    size = (min(student.shape[-2], teacher.shape[-2]), min(student.shape[-1], teacher.shape[-1]))
    if tuple(student.shape[-2:]) != size:
        student = F.adaptive_avg_pool2d(student, size)
    if tuple(teacher.shape[-2:]) != size:
        teacher = F.adaptive_avg_pool2d(teacher, size)
    return student, teacher


def global_pool(feature: Tensor) -> Tensor:
    """``(B, C, H, W)`` → ``(B, C)`` by global average pooling; other shapes are flattened."""
    if feature.dim() == 4:
        return feature.mean(dim=(2, 3))
    return feature.flatten(1)


class ShapeCheck:
    """Checks tapped shapes for one loss and names the loss and the layers when they do not fit.

    Args:
        label: The loss, as messages name it.
        student_layers: Student tap paths, one per pair.
        teacher_layers: Teacher tap paths, as many.
        adapters: Whether adapters may bridge differing shapes.
    """

    def __init__(self, label: str, student_layers: Sequence[str], teacher_layers: Sequence[str],
                 adapters: bool) -> None:
        self.label = label
        self.pairs = list(zip(student_layers, teacher_layers, strict=True))
        self.adapters = adapters

    def _where(self, i: int, s: torch.Size, t: torch.Size) -> str:
        s_layer, t_layer = self.pairs[i]
        return (f"{self.label}: student layer {s_layer!r} gives {tuple(s)} but teacher layer"
                f" {t_layer!r} gives {tuple(t)}")

    def maps(self, shapes: Sequence[torch.Size], side: str) -> None:
        """Every feature must be a ``(B, C, H, W)`` map."""
        layers = [pair[0 if side == "student" else 1] for pair in self.pairs]
        for layer, shape in zip(layers, shapes, strict=True):
            if len(shape) != 4:
                raise ConfigError(f"{self.label}: {side} layer {layer!r} gives {tuple(shape)}; this method"
                                  " needs feature maps (batch, channels, height, width): tap a conv layer")

    def same_rank(self, student: Sequence[torch.Size], teacher: Sequence[torch.Size]) -> None:
        """Student and teacher features of a pair must both be maps or both vectors."""
        for i, (s, t) in enumerate(zip(student, teacher, strict=True)):
            if len(s) != len(t) or len(s) not in (2, 4):
                raise ConfigError(self._where(i, s, t) + "; tap layers that both give (B, C, H, W) maps"
                                  " or both (B, D) vectors")

    def spatial(self, student: Sequence[torch.Size], teacher: Sequence[torch.Size]) -> None:
        """Map sizes may differ only when adapters (pooling) are on."""
        for i, (s, t) in enumerate(zip(student, teacher, strict=True)):
            if not self.adapters and len(s) == 4 and s[-2:] != t[-2:]:
                raise ConfigError(self._where(i, s, t) + "; the sizes differ and adapters are off:"
                                  " set adapters: true or tap layers of the same height and width")

    def regressors(self, student: Sequence[torch.Size], teacher: Sequence[torch.Size]) -> nn.ModuleList:
        """One channel regressor per pair (identity where channels agree).

        Raises:
            ConfigError: Channels differ and adapters are off.
        """
        self.same_rank(student, teacher)
        for i, (s, t) in enumerate(zip(student, teacher, strict=True)):
            if not self.adapters and s[1] != t[1]:
                raise ConfigError(self._where(i, s, t) + "; the channels differ and adapters are off:"
                                  " set adapters: true or tap layers with as many channels")
        return nn.ModuleList(regressor(s, t) for s, t in zip(student, teacher, strict=True))
