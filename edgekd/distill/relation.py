"""Relation-based losses: they compare how samples of a batch relate to each other in the
student and in the teacher, so the two feature sizes may differ (no adapters needed).

Feature maps are globally average-pooled to embeddings (B, C), except for SP, which
flattens them.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from edgekd.distill.adapters import ShapeCheck, global_pool
from edgekd.distill.base import LOSSES, DistillLoss, KDInputs


class RelationLoss(DistillLoss):
    """Sums :meth:`relation` over the tapped (student, teacher) pairs."""

    kind: ClassVar[str] = "relation"
    default_taps = "last"

    def setup(self, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size], num_samples: int) -> None:
        ShapeCheck(self.label, self.student_layers, self.teacher_layers, self.adapters).same_rank(
            student_shapes, teacher_shapes)

    def forward(self, batch: KDInputs) -> Tensor:
        student, teacher = self.features(batch)
        return sum(self.relation(s, t) for s, t in zip(student, teacher, strict=True))

    def relation(self, student: Tensor, teacher: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _distances(e: Tensor) -> Tensor:
    """Euclidean distance matrix with an exact zero diagonal (and a finite gradient there)."""
    squared = (e.unsqueeze(0) - e.unsqueeze(1)).pow(2).sum(-1)
    off_diagonal = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    return squared.clamp(min=1e-12).sqrt() * off_diagonal


def _angles(e: Tensor) -> Tensor:
    """cos∠(e_j, e_i, e_k) for every triplet: ⟨unit(e_j − e_i), unit(e_k − e_i)⟩, shape (B, B, B)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), dim=2)
    return diff @ diff.transpose(1, 2)


@LOSSES.register("rkd")
class RelationalKD(RelationLoss):
    """Relational KD: distance-wise ψ_D = ‖e_i − e_j‖ / μ (μ the mean distance over i ≠ j) and
    angle-wise ψ_A = cos∠e_i e_j e_k potentials, each matched with the Huber (smooth L1) loss
    averaged over all pairs / triplets; the loss is w_d · L_D + w_a · L_A.

    Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019.

    Args:
        distance_weight: w_d (25 in the paper's code).
        angle_weight: w_a (50).
    """

    paper: ClassVar[str] = "Park, Kim, Lu & Cho, Relational Knowledge Distillation, CVPR 2019"

    def __init__(self, distance_weight: float = 25.0, angle_weight: float = 50.0) -> None:
        super().__init__()
        if distance_weight < 0 or angle_weight < 0:
            raise ValueError("distance_weight and angle_weight must be >= 0")
        self.distance_weight, self.angle_weight = float(distance_weight), float(angle_weight)

    def relation(self, student: Tensor, teacher: Tensor) -> Tensor:
        s, t = global_pool(student), global_pool(teacher)
        n = len(s)
        pairs = max(n * (n - 1), 1)
        d_s, d_t = _distances(s), _distances(t)
        d_s = d_s / (d_s.sum() / pairs).clamp(min=1e-12)
        d_t = d_t / (d_t.sum() / pairs).clamp(min=1e-12)
        return (self.distance_weight * F.smooth_l1_loss(d_s, d_t)
                + self.angle_weight * F.smooth_l1_loss(_angles(s), _angles(t)))


@LOSSES.register("sp")
class SimilarityPreserving(RelationLoss):
    """Similarity-preserving KD: G = Q Qᵀ of the flattened features Q (B × CHW), each row
    L2-normalized; the loss is ‖G_s − G_t‖²_F / B².

    Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019.
    """

    paper: ClassVar[str] = "Tung & Mori, Similarity-Preserving Knowledge Distillation, ICCV 2019"

    def relation(self, student: Tensor, teacher: Tensor) -> Tensor:
        def gram(f: Tensor) -> Tensor:
            q = f.flatten(1)
            return F.normalize(q @ q.t(), dim=1)

        return (gram(student) - gram(teacher)).pow(2).sum() / len(student) ** 2


@LOSSES.register("cc")
class CorrelationCongruence(RelationLoss):
    """Correlation congruence: the correlation matrix of L2-normalized embeddings under a
    Gaussian RBF kernel in its P-order Taylor form, k(x, y) = Σ_{p=0}^{P} e^{−2γ} (2γ)^p / p! ·
    (xᵀy)^p; the loss is ‖K_s − K_t‖²_F / B².

    Peng, Jin, Liu, Li, Wu, Liu, Zhou & Zhang, "Correlation Congruence for Knowledge
    Distillation", ICCV 2019.

    Args:
        gamma: γ of the kernel.
        order: P, the Taylor order.
    """

    paper: ClassVar[str] = ("Peng, Jin, Liu, Li, Wu, Liu, Zhou & Zhang, Correlation Congruence for Knowledge"
                            " Distillation, ICCV 2019")

    def __init__(self, gamma: float = 0.4, order: int = 2) -> None:
        super().__init__()
        if gamma <= 0:
            raise ValueError("gamma must be > 0")
        if isinstance(order, bool) or not isinstance(order, int) or order < 0:
            raise ValueError("order must be an integer >= 0")
        self.gamma, self.order = float(gamma), order

    def _kernel(self, f: Tensor) -> Tensor:
        e = F.normalize(global_pool(f), dim=1)
        dot = e @ e.t()
        g = 2 * self.gamma
        return sum(math.exp(-g) * g**p / math.factorial(p) * dot.pow(p) for p in range(self.order + 1))

    def relation(self, student: Tensor, teacher: Tensor) -> Tensor:
        return (self._kernel(student) - self._kernel(teacher)).pow(2).sum() / len(student) ** 2


@LOSSES.register("pkt")
class ProbabilisticKT(RelationLoss):
    """Probabilistic knowledge transfer: with the cosine kernel K(a, b) = (cos(a, b) + 1) / 2,
    the conditional probabilities p_{i|j} = K(x_i, x_j) / Σ_{k≠j} K(x_k, x_j) (i ≠ j) of the
    student and the teacher embeddings are matched with KL, Σ p_t log(p_t / p_s), averaged
    over the B² entries (the diagonal counts as 0).

    Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer",
    ECCV 2018.

    Args:
        eps: Keeps the logarithm finite.
    """

    paper: ClassVar[str] = ("Passalis & Tefas, Learning Deep Representations with Probabilistic Knowledge Transfer,"
                            " ECCV 2018")

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError("eps must be > 0")
        self.eps = float(eps)

    def _conditional(self, f: Tensor) -> Tensor:
        e = F.normalize(global_pool(f), dim=1)
        similarity = (e @ e.t() + 1) / 2
        similarity = similarity * ~torch.eye(len(e), dtype=torch.bool, device=e.device)
        return similarity / similarity.sum(dim=1, keepdim=True).clamp(min=self.eps)

    def relation(self, student: Tensor, teacher: Tensor) -> Tensor:
        p_s, p_t = self._conditional(student), self._conditional(teacher)
        return (p_t * torch.log((p_t + self.eps) / (p_s + self.eps))).mean()
