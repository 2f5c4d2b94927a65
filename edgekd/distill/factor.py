"""Factor transfer: a paraphraser compresses the teacher's features into factors, a translator
learns to produce them from the student's."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekd.distill.adapters import ShapeCheck
from edgekd.distill.base import LOSSES, KDInputs, PreTrainer
from edgekd.distill.feature import PairwiseMapsLoss, check_epochs


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1))


class Paraphraser(nn.Module):
    """A convolutional autoencoder of teacher features: three 3x3 conv-BN-LeakyReLU layers
    encode ``channels`` into ``factors`` channels, three decode them back (the last linear)."""

    def __init__(self, channels: int, factors: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(_conv(channels, channels), _conv(channels, factors), _conv(factors, factors))
        self.decoder = nn.Sequential(_conv(factors, factors), _conv(factors, channels),
                                     nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


@LOSSES.register("ft")
class FactorTransfer(PairwiseMapsLoss):
    """Factor transfer. Paraphraser stage: an autoencoder of each teacher layer (factor rate
    k = ``rate``) is trained on the reconstruction MSE for ``paraphraser_epochs``, then frozen.
    Main stage: a translator (three conv layers) maps the student layer to factors F_S; with
    F_T the paraphraser's factors, the loss is the mean over elements of
    |F_T/‖F_T‖₂ − F_S/‖F_S‖₂| (p = 1, each factor flattened per sample).

    Kim, Park & Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer",
    NeurIPS 2018.

    Args:
        rate: Factor channels = round(rate × teacher channels).
        paraphraser_epochs: Epochs of the paraphraser stage.
    """

    paper: ClassVar[str] = ("Kim, Park & Kwak, Paraphrasing Complex Network: Network Compression via Factor"
                            " Transfer, NeurIPS 2018")
    default_taps = "last"

    def __init__(self, rate: float = 0.5, paraphraser_epochs: int = 2) -> None:
        super().__init__()
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.paraphraser_epochs = check_epochs("paraphraser_epochs", paraphraser_epochs)
        self._frozen = False

    def build(self, check: ShapeCheck, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size]) -> None:
        factors = [max(1, round(self.rate * t[1])) for t in teacher_shapes]
        self.paraphrasers = nn.ModuleList(Paraphraser(t[1], f) for t, f in zip(teacher_shapes, factors, strict=True))
        self.translators = nn.ModuleList(
            nn.Sequential(_conv(s[1], s[1]), _conv(s[1], f), _conv(f, f))
            for s, f in zip(student_shapes, factors, strict=True)
        )

    def pre_train(self, trainer: PreTrainer) -> None:
        def reconstruction(batch: KDInputs) -> Tensor:
            _, teacher = self.features(batch)
            return sum(F.mse_loss(p(t), t) for p, t in zip(self.paraphrasers, teacher, strict=True))

        self.paraphrasers.train()
        trainer.fit(list(self.paraphrasers.parameters()), reconstruction, self.paraphraser_epochs,
                    "ft paraphraser")
        self.paraphrasers.requires_grad_(False)
        self._frozen = True
        self.paraphrasers.eval()

    def train(self, mode: bool = True) -> FactorTransfer:
        super().train(mode)
        if self._frozen:
            self.paraphrasers.eval()
        return self

    def forward(self, batch: KDInputs) -> Tensor:
        total = 0.0
        for paraphraser, translator, (s, t) in zip(self.paraphrasers, self.translators, self.pairs(batch),
                                                   strict=True):
            factor_t = F.normalize(paraphraser.encoder(t).flatten(1), dim=1).detach()
            factor_s = F.normalize(translator(s).flatten(1), dim=1)
            total = total + (factor_t - factor_s).abs().mean()
        return total
