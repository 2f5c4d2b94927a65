"""Contrastive representation distillation with a memory bank of past embeddings."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekd.distill.adapters import global_pool
from edgekd.distill.base import LOSSES, KDInputs
from edgekd.distill.relation import RelationLoss
from edgekd.errors import ConfigError


@LOSSES.register("crd")
class ContrastiveRepresentationDistillation(RelationLoss):
    """CRD: linear heads map the (pooled) student and teacher features to unit embeddings v_s,
    v_t of ``feat_dim``; two memory banks keep one embedding per training sample. For each
    sample, the positive is its own bank entry and ``nce_k`` negatives are drawn uniformly.
    With h = exp(vᵀm / τ) / Z (Z fixed on the first batch as N · mean h), K negatives and
    P_n = 1/N, the NCE loss is −(1/B) Σ [log(h⁺ / (h⁺ + K P_n)) + Σ_neg log(K P_n / (h⁻ + K P_n))],
    taken both ways: the student anchor against the teacher bank and the teacher anchor against
    the student bank. After each batch the bank rows of its samples move to
    unit(μ · m + (1 − μ) · v).

    Tian, Krishnan & Isola, "Contrastive Representation Distillation", ICLR 2020.

    Args:
        feat_dim: Embedding size.
        nce_k: Negatives per sample (at most N − 1 are drawn on a training set of N samples).
        temperature: τ.
        momentum: μ, the bank update momentum.
        seed: Seeds the bank's initialisation and the negative sampling.
    """

    paper: ClassVar[str] = "Tian, Krishnan & Isola, Contrastive Representation Distillation, ICLR 2020"
    needs_indices: ClassVar[bool] = True
    eps: ClassVar[float] = 1e-7

    def __init__(self, feat_dim: int = 128, nce_k: int = 16384, temperature: float = 0.07, momentum: float = 0.5,
                 seed: int = 0) -> None:
        super().__init__()
        for name, value in (("feat_dim", feat_dim), ("nce_k", nce_k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1")
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        if not 0 <= momentum < 1:
            raise ValueError("momentum must be in [0, 1)")
        self.feat_dim, self.nce_k = feat_dim, nce_k
        self.temperature, self.momentum = float(temperature), float(momentum)
        self.generator = torch.Generator().manual_seed(seed)

    def setup(self, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size], num_samples: int) -> None:
        super().setup(student_shapes, teacher_shapes, num_samples)
        if len(student_shapes) != 1:
            raise ConfigError(f"{self.label}: CRD contrasts one embedding per model; tap one layer each,"
                              f" not {len(student_shapes)}")
        if num_samples < 2:
            raise ConfigError(f"{self.label}: CRD needs at least 2 training samples")
        self.num_samples = num_samples
        self.negatives = min(self.nce_k, num_samples - 1)
        self.embed_student = nn.Linear(student_shapes[0][1], self.feat_dim)
        self.embed_teacher = nn.Linear(teacher_shapes[0][1], self.feat_dim)
        bound = 1 / math.sqrt(self.feat_dim / 3)
        for name in ("memory_student", "memory_teacher"):
            bank = torch.rand(num_samples, self.feat_dim, generator=self.generator) * 2 * bound - bound
            self.register_buffer(name, bank)
        self.register_buffer("z", torch.full((2,), -1.0))

    def forward(self, batch: KDInputs) -> Tensor:
        if batch.indices is None:
            raise ConfigError(f"{self.label}: CRD needs each sample's index in the training set;"
                              " this stage does not give them")
        (student,), (teacher,) = self.features(batch)
        v_s = F.normalize(self.embed_student(global_pool(student)), dim=1)
        v_t = F.normalize(self.embed_teacher(global_pool(teacher)), dim=1)
        idx = batch.indices.to(self.memory_student.device)
        sample = torch.randint(0, self.num_samples, (len(idx), self.negatives + 1), generator=self.generator)
        sample = sample.to(idx.device)
        sample[:, 0] = idx
        h_s = torch.exp(self._scores(self.memory_teacher, v_s, sample) / self.temperature)
        h_t = torch.exp(self._scores(self.memory_student, v_t, sample) / self.temperature)
        if self.z[0] < 0:
            self.z.copy_(torch.stack([h_s.mean(), h_t.mean()]).detach() * self.num_samples)
        loss = self._nce(h_s / self.z[0]) + self._nce(h_t / self.z[1])
        self._update(self.memory_student, idx, v_s)
        self._update(self.memory_teacher, idx, v_t)
        return loss

    def _scores(self, bank: Tensor, v: Tensor, sample: Tensor) -> Tensor:
        """vᵀm for the sampled bank rows m, shape (B, K + 1)."""
        if 4 * sample.shape[1] >= self.num_samples:  # scoring the whole bank is cheaper than gathering rows
            return (v @ bank.t().clone()).gather(1, sample)  # a copy: the bank is updated before backward
        return torch.einsum("bkd,bd->bk", bank[sample], v)

    def _nce(self, h: Tensor) -> Tensor:
        noise = self.negatives / self.num_samples  # K · P_n
        positive = torch.log(h[:, 0] / (h[:, 0] + noise + self.eps))
        negative = torch.log(noise / (h[:, 1:] + noise + self.eps))
        return -(positive.sum() + negative.sum()) / len(h)

    @torch.no_grad()
    def _update(self, bank: Tensor, idx: Tensor, v: Tensor) -> None:
        bank[idx] = F.normalize(bank[idx] * self.momentum + v.detach() * (1 - self.momentum), dim=1)
