"""Losses on pre-activations through a connector: activation boundaries (AB) and the
comprehensive overhaul of feature distillation (OFD).

Both read the input of each layer's closing ReLU by default (``stages.<i>...relu:input``) and
map the student's pre-activation with a connector, a 1x1 conv + BN to the teacher's channels,
which is part of the method (built even when the channels agree).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from edgekd.distill.adapters import ShapeCheck
from edgekd.distill.base import LOSSES, KDInputs, PreTrainer
from edgekd.distill.feature import PairwiseMapsLoss, check_epochs


def _connectors(student_shapes: list[torch.Size], teacher_shapes: list[torch.Size]) -> nn.ModuleList:
    return nn.ModuleList(
        nn.Sequential(nn.Conv2d(s[1], t[1], 1, bias=False), nn.BatchNorm2d(t[1]))
        for s, t in zip(student_shapes, teacher_shapes, strict=True)
    )


@LOSSES.register("ab")
class ActivationBoundaries(PairwiseMapsLoss):
    """Activation-boundary transfer with the paper's alternative (hinge-like) loss: with r the
    connected student pre-activation, t the teacher's and margin μ, the mean over neurons of
    (r + μ)² · 1[r > −μ, t ≤ 0] + (r − μ)² · 1[r ≤ μ, t > 0]. The initialization stage trains
    the student and the connectors on it alone for ``init_epochs``; in the paper (and
    RepDistiller) the main stage then uses labels only: set ``weight: 0`` for that.

    Heo, Lee, Yun & Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed
    by Hidden Neurons", AAAI 2019.

    Args:
        margin: μ.
        init_epochs: Epochs of the initialization stage.
    """

    paper: ClassVar[str] = ("Heo, Lee, Yun & Choi, Knowledge Transfer via Distillation of Activation Boundaries"
                            " Formed by Hidden Neurons, AAAI 2019")
    default_taps = "stages"
    preactivation = True

    def __init__(self, margin: float = 1.0, init_epochs: int = 2) -> None:
        super().__init__()
        if margin <= 0:
            raise ValueError("margin must be > 0")
        self.margin = float(margin)
        self.init_epochs = check_epochs("init_epochs", init_epochs)

    def build(self, check: ShapeCheck, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size]) -> None:
        self.connectors = _connectors(student_shapes, teacher_shapes)

    def pre_train(self, trainer: PreTrainer) -> None:
        self.train_alone(trainer, self.init_epochs, "ab initialization")

    def forward(self, batch: KDInputs) -> Tensor:
        total, m = 0.0, self.margin
        for connect, (s, t) in zip(self.connectors, self.pairs(batch), strict=True):
            r = connect(s)
            off = (r + m).pow(2) * ((r > -m) & (t <= 0))
            on = (r - m).pow(2) * ((r <= m) & (t > 0))
            total = total + (off + on).mean()
        return total


@LOSSES.register("ofd")
class OverhaulFeatureDistillation(PairwiseMapsLoss):
    """Overhaul of feature distillation: the teacher's pre-activation t is clipped from below by
    a per-channel margin m = E[t | t < 0] (a margin ReLU); with r the connected student
    pre-activation, the partial L2 distance skips positions where r ≤ target ≤ 0; the loss is
    the mean over elements of (r − max(t, m))² · 1[r > target or target > 0].

    Heo, Kim, Yun, Park, Kwak & Choi, "A Comprehensive Overhaul of Feature Distillation",
    ICCV 2019. The paper derives m from the BN before the ReLU assuming Gaussian responses;
    here the pre-training pass measures it on the training data (:meth:`observe`), which also
    holds where the pre-activation is a residual sum rather than a BN output.
    """

    paper: ClassVar[str] = ("Heo, Kim, Yun, Park, Kwak & Choi, A Comprehensive Overhaul of Feature Distillation,"
                            " ICCV 2019")
    default_taps = "stages"
    preactivation = True

    def build(self, check: ShapeCheck, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size]) -> None:
        self.connectors = _connectors(student_shapes, teacher_shapes)
        for i, t in enumerate(teacher_shapes):
            self.register_buffer(f"negative_sum_{i}", torch.zeros(t[1]))
            self.register_buffer(f"negative_count_{i}", torch.zeros(t[1]))

    def pre_train(self, trainer: PreTrainer) -> None:
        for batch in trainer.batches("ofd margins"):
            self.observe(batch)

    @torch.no_grad()
    def observe(self, batch: KDInputs) -> None:
        """Add a batch's negative teacher responses to the margin statistics."""
        _, teacher = self.features(batch)
        for i, t in enumerate(teacher):
            negative = t.clamp(max=0)
            getattr(self, f"negative_sum_{i}").add_(negative.sum(dim=(0, 2, 3)))
            getattr(self, f"negative_count_{i}").add_((t < 0).sum(dim=(0, 2, 3)))

    def margin(self, i: int) -> Tensor:
        """Per-channel margin of pair ``i`` (0 where no negative response was observed)."""
        return getattr(self, f"negative_sum_{i}") / getattr(self, f"negative_count_{i}").clamp(min=1)

    def forward(self, batch: KDInputs) -> Tensor:
        total = 0.0
        for i, (connect, (s, t)) in enumerate(zip(self.connectors, self.pairs(batch), strict=True)):
            r = connect(s)
            target = torch.maximum(t, self.margin(i).view(1, -1, 1, 1))
            mask = (r > target) | (target > 0)
            total = total + ((r - target).pow(2) * mask).mean()
        return total
