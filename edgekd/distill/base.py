"""What every distillation loss shares: the registry, the batch it sees, and its life cycle.

A loss is built from YAML (:func:`edgekd.distill.losses.build_losses`), then the trainer

1. resolves its taps (``taps`` in YAML, else the method's default layers) and runs one probe
   batch to learn the tapped shapes, then calls :meth:`DistillLoss.attach`, which builds the
   adapters and any module the method owns (they are trained with the student and live in the
   loss, so they are never exported);
2. calls :meth:`DistillLoss.pre_train` (FitNets' hint stage, AB's initialization, FT's
   paraphraser, OFD's margins);
3. calls the loss on every batch with a :class:`KDInputs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

import torch
from torch import Tensor, nn

from edgekd.errors import ConfigError
from edgekd.registry import Registry

LOSSES: Registry[type[DistillLoss]] = Registry("loss")

DefaultTaps = Literal["stages", "points", "last", "middle"]
"""Which layers a loss reads when YAML names none (see :func:`edgekd.distill.features.default_taps`)."""


@dataclass
class KDInputs:
    """What a loss may look at for one batch.

    ``student_features`` / ``teacher_features`` map tap paths to tensors (teacher ones computed
    without gradient); ``indices`` are the samples' positions in the training set (CRD's memory).
    """

    student_logits: Tensor
    teacher_logits: Tensor
    labels: Tensor
    student_features: dict[str, Tensor] = field(default_factory=dict)
    teacher_features: dict[str, Tensor] = field(default_factory=dict)
    indices: Tensor | None = None


class PreTrainer(Protocol):
    """What :meth:`DistillLoss.pre_train` gets from the trainer."""

    student: nn.Module
    teacher: nn.Module

    def fit(self, params: Sequence[nn.Parameter], objective: Callable[[KDInputs], Tensor], epochs: int,
            what: str) -> list[float]:
        """Minimise ``objective`` over ``params`` for ``epochs`` passes over the training data;
        returns the mean objective per epoch."""

    def batches(self, what: str) -> Iterator[KDInputs]:
        """One pass over the training data without gradients (for statistics), reported as ``what``."""


class DistillLoss(nn.Module):
    """Base class: ``forward(KDInputs) -> scalar``. ``paper`` is shown by ``edgekd methods``.

    Class attributes describe what the method needs: ``kind`` (logit, feature or relation),
    ``default_taps`` (``None`` for logit losses, which read no features), ``preactivation``
    (default taps read the input of a layer's closing ReLU), ``uses_teacher`` and
    ``needs_indices``.
    """

    paper: ClassVar[str] = ""
    kind: ClassVar[str] = "logit"
    default_taps: ClassVar[DefaultTaps | None] = None
    preactivation: ClassVar[bool] = False
    uses_teacher: ClassVar[bool] = True
    needs_indices: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.label = self.__class__.__name__
        """How messages name this loss, e.g. ``stages.distill.losses.1 (fitnets)``."""
        self.taps: tuple[list[str], list[str]] | None = None
        """Explicit (student, teacher) layer paths from YAML; ``None`` takes the defaults."""
        self.adapters = True
        self.student_layers: list[str] = []
        self.teacher_layers: list[str] = []

    @property
    def needs_features(self) -> bool:
        return self.default_taps is not None

    def attach(self, student_layers: list[str], teacher_layers: list[str],
               student_shapes: list[torch.Size], teacher_shapes: list[torch.Size], *,
               num_samples: int) -> None:
        """Bind the resolved layer paths and build the modules that depend on their shapes.

        Args:
            student_layers: Tap paths of the student, one per pair.
            teacher_layers: Tap paths of the teacher, as many.
            student_shapes: Shape of each student feature on a probe batch.
            teacher_shapes: Shape of each teacher feature on the same batch.
            num_samples: Size of the training set (CRD's memory bank).

        Raises:
            ConfigError: The shapes cannot be used (adapters off and shapes differ, ...).
        """
        self.student_layers, self.teacher_layers = list(student_layers), list(teacher_layers)
        self.setup(list(student_shapes), list(teacher_shapes), num_samples)

    def setup(self, student_shapes: list[torch.Size], teacher_shapes: list[torch.Size],
              num_samples: int) -> None:
        """Build shape-dependent modules (adapters); the default builds none."""

    def pre_train(self, trainer: PreTrainer) -> None:
        """The method's own stage before the main epochs; the default has none."""

    def features(self, batch: KDInputs) -> tuple[list[Tensor], list[Tensor]]:
        """The (student, teacher) features of the attached layers, teacher ones detached.

        Raises:
            ConfigError: The batch carries no features for these layers (a caller that runs
                the models without taps, or a loss that was never attached).
        """
        if not self.student_layers:
            raise ConfigError(f"{self.label}: this loss reads features, but its layers were never attached;"
                              " use it in a stage that taps features (distill, qkd tutoring)")
        try:
            student = [batch.student_features[p] for p in self.student_layers]
            teacher = [batch.teacher_features[p].detach() for p in self.teacher_layers]
        except KeyError as exc:
            raise ConfigError(f"{self.label}: no feature for layer {exc.args[0]!r} in this batch;"
                              " this stage gives logits only: use a logit loss here") from None
        return student, teacher

    def forward(self, batch: KDInputs) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def train_alone(self, trainer: PreTrainer, epochs: int, what: str) -> None:
        """Train the student and this loss's modules on this loss alone for ``epochs``
        (FitNets' hint stage, AB's initialization, FSP's first stage)."""
        params = [p for p in (*trainer.student.parameters(), *self.parameters()) if p.requires_grad]
        trainer.fit(params, self, epochs, what)
