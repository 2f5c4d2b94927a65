"""QKD's three phases: Kim, Kim, Park, Yoo, Chang, Kwak, "QKD: Quantization-aware Knowledge
Distillation", 2019 (arXiv:1911.12491).

1. self-studying: the quantized student is fine-tuned on labels alone, so its quantizers
   settle before any teacher signal arrives;
2. co-studying: teacher and quantized student are trained together; the student learns from
   the teacher's soft outputs, and the teacher also learns from the student's, becoming a
   teacher that a low-precision student can follow;
3. tutoring: the teacher is frozen and the quantized student is trained with KD.

Each phase has its own :class:`~edgekd.config.TrainConfig` (epochs, learning rate, ...);
0 epochs skips it. The teacher given to :func:`co_study` is trained in place: callers pass a
copy they own (:func:`run_qkd` makes one), so the original teacher is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.config import TrainConfig
from edgekd.data import DataSplits, make_loader
from edgekd.distill import DistillLoss, KDInputs, TrainResult, evaluate, train_model
from edgekd.distill.trainer import _optimizer, _scheduler
from edgekd.models import copy_model
from edgekd.progress import NullProgress, Progress
from edgekd.quant.errors import QuantizationError

Losses = list[tuple[float, DistillLoss]]


@dataclass
class QKDResult:
    """The training history of each phase that ran (a skipped phase is absent)."""

    phases: dict[str, TrainResult] = field(default_factory=dict)
    teacher_history: list[dict[str, float]] = field(default_factory=list)
    """Co-studying: per epoch, the teacher's mean loss and val accuracy."""


def check_same_classes(student: nn.Module, teacher: nn.Module, data: DataSplits) -> None:
    """Raise QuantizationError when teacher and student give a different number of logits."""
    x = data.train.tensors[0][:2]
    with torch.no_grad():
        s_mode, t_mode = student.training, teacher.training
        student.eval(), teacher.eval()
        try:
            s_out, t_out = student(x), teacher(x)
        finally:
            student.train(s_mode), teacher.train(t_mode)
    if s_out.shape[1:] != t_out.shape[1:]:
        raise QuantizationError(
            f"the teacher outputs {tuple(t_out.shape[1:])} logits per sample but the student"
            f" {tuple(s_out.shape[1:])}; distill from a teacher trained on the same"
            f" {data.num_classes} classes"
        )


def self_study(
    qstudent: nn.Module,
    data: DataSplits,
    cfg: TrainConfig,
    *,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress = NullProgress(),
) -> TrainResult | None:
    """Phase 1: train the quantized student in place on labels alone (cross-entropy).

    Args:
        qstudent: The NNCF-quantized student (its weights and quantizer scales train).
        data: The splits; ``train`` trains, ``val`` is evaluated every epoch.
        cfg: This phase's epochs, learning rate, optimizer; ``cfg.epochs == 0`` skips it.
        batch_size: Used when ``cfg.batch_size`` is unset (the pipeline's data batch size).
        seed: Fixes the batch order.
        progress: Receives one task, ``qkd self-studying``.

    Returns:
        The history, or None when skipped.
    """
    if cfg.epochs == 0:
        return None
    return train_model(
        qstudent,
        data.train,
        cfg,
        default_batch_size=batch_size,
        seed=seed,
        val_set=data.val,
        ce_weight=1.0,
        progress=progress,
        task="qkd self-studying",
    )


def co_study(
    qstudent: nn.Module,
    teacher_copy: nn.Module,
    data: DataSplits,
    cfg: TrainConfig,
    losses: Losses,
    *,
    ce_weight: float = 1.0,
    teacher_cfg: TrainConfig | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress = NullProgress(),
) -> tuple[TrainResult, list[dict[str, float]]] | None:
    """Phase 2: train the quantized student and the teacher together, in place.

    Student loss: ``ce_weight`` × CE(student) + Σ weight × loss(student ← teacher).
    Teacher loss: ``ce_weight`` × CE(teacher) + Σ weight × loss(teacher ← student), the
    same registered losses with the roles swapped (each side sees the other's outputs
    detached). Both models see the same batches; each has its own optimizer and schedule.
    Only logit losses apply (the two sides exchange soft outputs, as in the paper).

    Args:
        qstudent: The quantized student.
        teacher_copy: A teacher the caller owns (a deep copy); it is trained here.
        data: The splits.
        cfg: Epochs and the student's optimizer; ``cfg.epochs == 0`` skips the phase.
        losses: (weight, loss) pairs from :func:`edgekd.distill.losses.build_losses`.
        ce_weight: Weight of each model's own cross-entropy.
        teacher_cfg: The teacher's optimizer settings (learning rate, ...); default ``cfg``.
            Its ``epochs`` is ignored: both train for ``cfg.epochs``.
        batch_size: Used when ``cfg.batch_size`` is unset.
        seed: Fixes the batch order.
        progress: Receives one task, ``qkd co-studying``.

    Returns:
        (the student's history, the teacher's per-epoch ``loss``/``val_accuracy``), or None
        when skipped.

    Raises:
        QuantizationError: Teacher and student give a different number of logits, or a
            loss reads features.
    """
    if cfg.epochs == 0:
        return None
    if not losses:
        raise ValueError("co-studying needs at least one distillation loss")
    check_co_studying_losses([loss for _, loss in losses])
    check_same_classes(qstudent, teacher_copy, data)
    if not any(p.requires_grad for p in teacher_copy.parameters()):
        raise QuantizationError(
            "the teacher has no trainable parameters (a frozen TorchScript module?), and co-studying trains"
            " it; set stages.qkd.co_studying.epochs: 0 to tutor from it as it is"
        )
    teacher_cfg = teacher_cfg or cfg
    bs = cfg.batch_size or batch_size
    loader = make_loader(data.train, bs, shuffle=True, seed=seed)
    student_losses = nn.ModuleList(loss for _, loss in losses)
    teacher_losses = copy.deepcopy(student_losses)  # the reverse direction owns its own loss state
    weights = [w for w, _ in losses]
    s_opt = _optimizer(list(qstudent.parameters()) + list(student_losses.parameters()), cfg)
    t_opt = _optimizer(list(teacher_copy.parameters()) + list(teacher_losses.parameters()), teacher_cfg)
    total_steps = max(1, cfg.epochs * len(loader))
    s_sched, t_sched = _scheduler(s_opt, cfg, total_steps), _scheduler(t_opt, teacher_cfg, total_steps)

    student_result = TrainResult()
    teacher_history: list[dict[str, float]] = []
    task = "qkd co-studying"
    progress.start(task, total=cfg.epochs)
    for epoch in range(cfg.epochs):
        qstudent.train(), teacher_copy.train(), student_losses.train(), teacher_losses.train()
        s_running = t_running = 0.0
        batches = 0
        for x, y in loader:
            s_logits = qstudent(x)
            t_logits = teacher_copy(x)
            s_loss = _side_loss(s_logits, t_logits.detach(), y, weights, student_losses, ce_weight)
            t_loss = _side_loss(t_logits, s_logits.detach(), y, weights, teacher_losses, ce_weight)
            s_opt.zero_grad(set_to_none=True)
            t_opt.zero_grad(set_to_none=True)
            (s_loss + t_loss).backward()  # the two graphs share nothing: each loss reaches its own model
            s_opt.step(), t_opt.step()
            s_sched.step(), t_sched.step()
            s_running += float(s_loss.detach())
            t_running += float(t_loss.detach())
            batches += 1
        s_entry = {"epoch": epoch + 1, "loss": s_running / max(batches, 1)}
        t_entry = {"epoch": epoch + 1, "loss": t_running / max(batches, 1)}
        if len(data.val) > 0:
            s_entry["val_accuracy"] = evaluate(qstudent, data.val, bs)
            t_entry["val_accuracy"] = evaluate(teacher_copy, data.val, bs)
        student_result.history.append(s_entry)
        teacher_history.append(t_entry)
        status = f"loss {s_entry['loss']:.3f}"
        if "val_accuracy" in s_entry:
            status += f" · val {s_entry['val_accuracy']:.1%} (teacher {t_entry['val_accuracy']:.1%})"
        progress.advance(task, status=status)
    progress.finish(task)
    qstudent.eval(), teacher_copy.eval()
    return student_result, teacher_history


def check_co_studying_losses(losses: list[DistillLoss]) -> None:
    """Raise QuantizationError for a loss co-studying cannot use: one that reads layer features or
    sample indices (the two sides exchange logits only)."""
    for loss in losses:
        if getattr(loss, "needs_features", False) or getattr(loss, "needs_indices", False):
            raise QuantizationError(
                f"{getattr(loss, 'label', type(loss).__name__)} reads layer features or sample indices, but"
                " co-studying exchanges logits only; use a logit loss (hinton, tf_kd, noisy_teacher), or set"
                " co_studying.epochs: 0 to use it in tutoring alone"
            )


def _side_loss(
    logits: torch.Tensor,
    other_logits: torch.Tensor,
    labels: torch.Tensor,
    weights: list[float],
    loss_fns: nn.ModuleList,
    ce_weight: float,
) -> torch.Tensor:
    loss = ce_weight * F.cross_entropy(logits, labels) if ce_weight else logits.new_zeros(())
    batch = KDInputs(student_logits=logits, teacher_logits=other_logits, labels=labels)
    for weight, loss_fn in zip(weights, loss_fns):
        loss = loss + weight * loss_fn(batch)
    return loss


def tutor(
    qstudent: nn.Module,
    teacher: nn.Module,
    data: DataSplits,
    cfg: TrainConfig,
    losses: Losses,
    *,
    ce_weight: float = 1.0,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress = NullProgress(),
) -> TrainResult | None:
    """Phase 3: train the quantized student in place with KD from a frozen ``teacher``
    (``ce_weight`` × CE + the weighted ``losses``); the teacher is only run, in eval mode.

    Returns:
        The history, or None when ``cfg.epochs == 0``.

    Raises:
        QuantizationError: Teacher and student give a different number of logits.
    """
    if cfg.epochs == 0:
        return None
    check_same_classes(qstudent, teacher, data)
    requires_grad = [p.requires_grad for p in teacher.parameters()]
    for p in teacher.parameters():
        p.requires_grad_(False)
    try:
        return train_model(
            qstudent,
            data.train,
            cfg,
            default_batch_size=batch_size,
            seed=seed,
            val_set=data.val,
            teacher=teacher,
            losses=losses,
            ce_weight=ce_weight,
            progress=progress,
            task="qkd tutoring",
        )
    finally:
        for p, flag in zip(teacher.parameters(), requires_grad):
            p.requires_grad_(flag)


def run_qkd(
    qstudent: nn.Module,
    teacher: nn.Module,
    data: DataSplits,
    *,
    self_studying: TrainConfig,
    co_studying: TrainConfig,
    tutoring: TrainConfig,
    losses: Losses,
    ce_weight: float = 1.0,
    teacher_cfg: TrainConfig | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress = NullProgress(),
) -> tuple[QKDResult, nn.Module]:
    """The three phases in order on ``qstudent`` (trained in place).

    The teacher is deep-copied first: co-studying trains the copy and tutoring uses the
    co-studied copy, as in the paper; ``teacher`` itself is never changed.

    Returns:
        (the phases' histories, the teacher copy after co-studying).
    """
    teacher_copy = copy_model(teacher)
    result = QKDResult()
    history = self_study(qstudent, data, self_studying, batch_size=batch_size, seed=seed, progress=progress)
    if history is not None:
        result.phases["self_studying"] = history
    co = co_study(
        qstudent,
        teacher_copy,
        data,
        co_studying,
        losses,
        ce_weight=ce_weight,
        teacher_cfg=teacher_cfg,
        batch_size=batch_size,
        seed=seed + 1,
        progress=progress,
    )
    if co is not None:
        result.phases["co_studying"], result.teacher_history = co
    history = tutor(
        qstudent,
        teacher_copy,
        data,
        tutoring,
        losses,
        ce_weight=ce_weight,
        batch_size=batch_size,
        seed=seed + 2,
        progress=progress,
    )
    if history is not None:
        result.phases["tutoring"] = history
    return result, teacher_copy
