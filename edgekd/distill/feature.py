"""Feature-based losses that compare tapped feature maps (FitNets, AT, FSP, NST, VID).

Each sums its per-pair term over the tapped (student, teacher) layer pairs. Reductions are
means over elements, as in RepDistiller (Tian et al. 2020), so its loss weights carry over.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekd.distill.adapters import ShapeCheck, pool_to_common_size
from edgekd.distill.base import LOSSES, DistillLoss, KDInputs, PreTrainer
from edgekd.errors import ConfigError


def check_epochs(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0")
    return value


class PairwiseMapsLoss(DistillLoss):
    """A loss over (student, teacher) feature-map pairs brought to a common size."""

    kind: ClassVar[str] = "feature"
    regress_channels: ClassVar[bool] = False

    def setup(self, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size], num_samples: int) -> None:
        check = ShapeCheck(self.label, self.student_layers, self.teacher_layers, self.adapters)
        check.maps(student_shapes, "student")
        check.maps(teacher_shapes, "teacher")
        check.spatial(student_shapes, teacher_shapes)
        self.build(check, student_shapes, teacher_shapes)

    def build(self, check: ShapeCheck, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size]) -> None:
        """Build the method's modules; the default builds none."""

    def pairs(self, batch: KDInputs) -> list[tuple[Tensor, Tensor]]:
        """Each (student, teacher) pair pooled to its smaller height and width."""
        student, teacher = self.features(batch)
        return [pool_to_common_size(s, t) for s, t in zip(student, teacher, strict=True)]


@LOSSES.register("fitnets")
class FitNets(PairwiseMapsLoss):
    """Hints: a 1x1 conv regressor r maps a student layer to a teacher layer's shape; the loss
    is the mean of (r(s) − t)². The hint stage first trains the student (up to the guided
    layer, the only part the loss reaches) and r on this loss alone for ``hint_epochs``.

    Romero, Ballas, Kahou, Chassang, Gatta & Bengio, "FitNets: Hints for Thin Deep Nets",
    ICLR 2015.

    Args:
        hint_epochs: Epochs of the hint stage (0 skips it, as RepDistiller does).
    """

    paper: ClassVar[str] = ("Romero, Ballas, Kahou, Chassang, Gatta & Bengio, FitNets: Hints for Thin Deep Nets,"
                            " ICLR 2015")
    default_taps = "middle"

    def __init__(self, hint_epochs: int = 2) -> None:
        super().__init__()
        self.hint_epochs = check_epochs("hint_epochs", hint_epochs)

    def build(self, check: ShapeCheck, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size]) -> None:
        self.regressors = check.regressors(student_shapes, teacher_shapes)

    def pre_train(self, trainer: PreTrainer) -> None:
        self.train_alone(trainer, self.hint_epochs, "fitnets hint stage")

    def forward(self, batch: KDInputs) -> Tensor:
        return sum(F.mse_loss(r(s), t) for r, (s, t) in zip(self.regressors, self.pairs(batch), strict=True))


def attention_map(feature: Tensor, p: float) -> Tensor:
    """Zagoruyko & Komodakis' spatial attention: mean over channels of |A|^p, flattened and
    L2-normalized per sample."""
    return F.normalize(feature.abs().pow(p).mean(dim=1).flatten(1), dim=1)


@LOSSES.register("at")
class AttentionTransfer(PairwiseMapsLoss):
    """Attention transfer: Q = vec(Σ_c |A_c|^p) / ‖·‖₂ per sample; the loss is the mean of
    (Q_s − Q_t)² per layer pair (the authors' code; their paper's β/2 goes into the weight).

    Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the Performance of
    Convolutional Neural Networks via Attention Transfer", ICLR 2017.

    Args:
        p: Exponent of the activations (2 in the paper).
    """

    paper: ClassVar[str] = ("Zagoruyko & Komodakis, Paying More Attention to Attention: Improving the Performance"
                            " of Convolutional Neural Networks via Attention Transfer, ICLR 2017")
    default_taps = "stages"

    def __init__(self, p: float = 2.0) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError("p must be > 0")
        self.p = float(p)

    def forward(self, batch: KDInputs) -> Tensor:
        return sum((attention_map(s, self.p) - attention_map(t, self.p)).pow(2).mean() for s, t in self.pairs(batch))


def fsp_matrix(lower: Tensor, upper: Tensor) -> Tensor:
    """The flow of solution procedure between two maps of one network: G[b, i, j] =
    Σ_{h,w} lower[b, i, h, w] · upper[b, j, h, w] / (H·W), the larger map pooled to the smaller."""
    lower, upper = pool_to_common_size(lower, upper)
    return torch.einsum("bihw,bjhw->bij", lower, upper) / (lower.shape[-2] * lower.shape[-1])


@LOSSES.register("fsp")
class FSP(PairwiseMapsLoss):
    """FSP matrices between consecutive tapped layers of each network (student channels mapped
    to the teacher's by 1x1 conv regressors where they differ); the loss sums, over the
    consecutive pairs, the mean of (G_s − G_t)². The paper trains on it alone first
    (``init_epochs``), then on the task; RepDistiller does the same with weight 0 after.

    Yim, Joo, Bae & Kim, "A Gift from Knowledge Distillation: Fast Optimization, Network
    Minimization and Transfer Learning", CVPR 2017.

    Args:
        init_epochs: Epochs of the first stage (this loss alone).
    """

    paper: ClassVar[str] = ("Yim, Joo, Bae & Kim, A Gift from Knowledge Distillation: Fast Optimization, Network"
                            " Minimization and Transfer Learning, CVPR 2017")
    default_taps = "points"

    def __init__(self, init_epochs: int = 0) -> None:
        super().__init__()
        self.init_epochs = check_epochs("init_epochs", init_epochs)

    def setup(self, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size], num_samples: int) -> None:
        check = ShapeCheck(self.label, self.student_layers, self.teacher_layers, self.adapters)
        check.maps(student_shapes, "student")
        check.maps(teacher_shapes, "teacher")
        if len(student_shapes) < 2:
            raise ConfigError(f"{self.label}: FSP relates consecutive layers, so it needs at least two layer"
                              f" pairs; got {len(student_shapes)}: tap more layers")
        self.regressors = check.regressors(student_shapes, teacher_shapes)

    def pre_train(self, trainer: PreTrainer) -> None:
        self.train_alone(trainer, self.init_epochs, "fsp first stage")

    def forward(self, batch: KDInputs) -> Tensor:
        student, teacher = self.features(batch)
        student = [r(s) for r, s in zip(self.regressors, student, strict=True)]
        return sum((fsp_matrix(student[i], student[i + 1]) - fsp_matrix(teacher[i], teacher[i + 1])).pow(2).mean()
                   for i in range(len(student) - 1))


@LOSSES.register("nst")
class NeuronSelectivityTransfer(PairwiseMapsLoss):
    """Neuron selectivity transfer: each channel's map, flattened and L2-normalized, is a sample;
    the loss is the squared MMD between the student's and the teacher's channel distributions
    with the polynomial kernel k(x, y) = (xᵀy)² (d = 2, c = 0), averaged over the batch.

    Huang & Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer",
    arXiv:1707.01219, 2017.
    """

    paper: ClassVar[str] = ("Huang & Wang, Like What You Like: Knowledge Distill via Neuron Selectivity Transfer,"
                            " arXiv:1707.01219, 2017")
    default_taps = "stages"

    def forward(self, batch: KDInputs) -> Tensor:
        total = 0.0
        for s, t in self.pairs(batch):
            s, t = F.normalize(s.flatten(2), dim=2), F.normalize(t.flatten(2), dim=2)
            total = total + _poly2(t, t) + _poly2(s, s) - 2 * _poly2(s, t)
        return total


def _poly2(a: Tensor, b: Tensor) -> Tensor:
    """Mean over the batch and all channel pairs of (a_iᵀ b_j)²."""
    return (a @ b.transpose(1, 2)).pow(2).mean()


@LOSSES.register("vid")
class VariationalInformationDistillation(PairwiseMapsLoss):
    """Variational information distillation: a Gaussian q(t | s) with mean μ(s) (three 1x1
    convs with ReLUs between) and a learned variance per teacher channel, σ² = softplus(α) + ε;
    the loss is the mean over elements of ½ ((t − μ(s))² / σ² + log σ²), i.e. −log q up to a
    constant.

    Ahn, Hu, Damianou, Lawrence & Dai, "Variational Information Distillation for Knowledge
    Transfer", CVPR 2019.

    Args:
        init_variance: σ² at the start.
        eps: ε, the variance floor.
    """

    paper: ClassVar[str] = ("Ahn, Hu, Damianou, Lawrence & Dai, Variational Information Distillation for Knowledge"
                            " Transfer, CVPR 2019")
    default_taps = "stages"

    def __init__(self, init_variance: float = 5.0, eps: float = 1e-5) -> None:
        super().__init__()
        if init_variance <= eps or eps <= 0:
            raise ValueError("need init_variance > eps > 0")
        self.init_variance, self.eps = float(init_variance), float(eps)

    def build(self, check: ShapeCheck, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size]) -> None:
        def mean_net(c_s: int, c_t: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(c_s, c_t, 1), nn.ReLU(), nn.Conv2d(c_t, c_t, 1), nn.ReLU(),
                                 nn.Conv2d(c_t, c_t, 1))

        self.means = nn.ModuleList(mean_net(s[1], t[1]) for s, t in zip(student_shapes, teacher_shapes, strict=True))
        alpha = math.log(math.expm1(self.init_variance - self.eps))  # softplus⁻¹
        self.alphas = nn.ParameterList(nn.Parameter(torch.full((t[1],), alpha)) for t in teacher_shapes)

    def forward(self, batch: KDInputs) -> Tensor:
        total = 0.0
        for mean, alpha, (s, t) in zip(self.means, self.alphas, self.pairs(batch), strict=True):
            variance = (F.softplus(alpha) + self.eps).view(1, -1, 1, 1)
            total = total + (0.5 * ((t - mean(s)).pow(2) / variance + variance.log())).mean()
        return total
