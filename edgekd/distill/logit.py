"""Logit-based losses: they read the student's and (maybe) the teacher's outputs only."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from edgekd.distill.base import LOSSES, DistillLoss, KDInputs


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise ValueError(f"{name} must be > 0")
    return float(value)


@LOSSES.register("hinton")
class HintonKD(DistillLoss):
    """KL divergence between temperature-softened teacher and student outputs, scaled by T².

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015.

    Args:
        temperature: Softens both distributions (T in the paper).
    """

    paper: ClassVar[str] = "Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network, 2015"

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = _positive("temperature", temperature)

    def forward(self, batch: KDInputs) -> Tensor:
        t = self.temperature
        log_p_student = F.log_softmax(batch.student_logits / t, dim=1)
        log_p_teacher = F.log_softmax(batch.teacher_logits.detach() / t, dim=1)
        return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * t * t


@LOSSES.register("tf_kd")
class TeacherFreeKD(DistillLoss):
    """Teacher-free KD, the regularization form (Tf-KD_reg): KL from a hand-made teacher that
    puts ``correct_prob`` on the label and spreads the rest evenly, softened by τ, to the
    softened student, times τ²: τ² · KL(softmax(log u / τ) ‖ softmax(z_s / τ)), batch mean.

    Yuan, Tay, Li, Wang & Feng, "Revisiting Knowledge Distillation via Label Smoothing
    Regularization", CVPR 2020. It needs no teacher (the stage's teacher is not run for it).

    Args:
        correct_prob: Probability u puts on the correct class (a in the paper), in (0, 1).
        temperature: τ.
    """

    paper: ClassVar[str] = ("Yuan, Tay, Li, Wang & Feng, Revisiting Knowledge Distillation via Label Smoothing"
                            " Regularization, CVPR 2020")
    uses_teacher: ClassVar[bool] = False

    def __init__(self, correct_prob: float = 0.9, temperature: float = 4.0) -> None:
        super().__init__()
        if not 0 < correct_prob < 1:
            raise ValueError("correct_prob must be between 0 and 1 (exclusive)")
        self.correct_prob = float(correct_prob)
        self.temperature = _positive("temperature", temperature)

    def forward(self, batch: KDInputs) -> Tensor:
        logits, t = batch.student_logits, self.temperature
        classes = logits.shape[1]
        teacher = torch.full_like(logits, (1 - self.correct_prob) / max(classes - 1, 1))
        teacher.scatter_(1, batch.labels.view(-1, 1), self.correct_prob)
        log_p_teacher = F.log_softmax(teacher.log() / t, dim=1)
        log_p_student = F.log_softmax(logits / t, dim=1)
        return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * t * t


@LOSSES.register("noisy_teacher")
class NoisyTeacherKD(DistillLoss):
    """Logit regression to a teacher whose logits are perturbed: z' = z_t ⊙ (1 + ξ), ξ ~ N(0, σ²)
    per logit, for a random fraction ``probability`` of the samples (the rest keep z_t); the loss
    is ½ (z_s − z')² averaged over samples and logits.

    Sau & Balasubramanian, "Deep Model Compression: Distilling Knowledge from Noisy Teachers",
    arXiv:1610.09650, 2016.

    Args:
        sigma: Standard deviation σ of the relative noise.
        probability: Fraction of samples whose teacher logits get noise (α in the paper).
        seed: Seeds the noise, so a run is reproducible.
    """

    paper: ClassVar[str] = ("Sau & Balasubramanian, Deep Model Compression: Distilling Knowledge from Noisy"
                            " Teachers, arXiv:1610.09650, 2016")

    def __init__(self, sigma: float = 0.1, probability: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError("sigma must be >= 0")
        if not 0 <= probability <= 1:
            raise ValueError("probability must be between 0 and 1")
        self.sigma, self.probability = float(sigma), float(probability)
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, batch: KDInputs) -> Tensor:
        teacher = batch.teacher_logits.detach()
        noise = torch.randn(teacher.shape, generator=self.generator) * self.sigma
        chosen = torch.rand(teacher.shape[0], 1, generator=self.generator) < self.probability
        noisy = teacher * (1 + (noise * chosen).to(teacher))
        return 0.5 * (batch.student_logits - noisy).pow(2).mean()
