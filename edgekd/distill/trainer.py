"""One training loop for every model in the chain: labels only, or labels plus distillation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgekd.config import TrainConfig
from edgekd.data import make_loader
from edgekd.distill.base import DistillLoss, KDInputs
from edgekd.distill.step import DistillStep
from edgekd.distributed import RankSlices, data_parallel, global_batchnorm, world
from edgekd.progress import NullProgress, Progress


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: ``epoch``, ``loss`` (mean over batches), ``val_accuracy`` (when a val split exists)."""


def train_model(
    model: nn.Module,
    train_set: TensorDataset,
    cfg: TrainConfig,
    *,
    default_batch_size: int,
    seed: int,
    val_set: TensorDataset | None = None,
    teacher: nn.Module | None = None,
    losses: list[tuple[float, DistillLoss]] = (),
    ce_weight: float = 1.0,
    progress: Progress = NullProgress(),
    task: str = "train",
) -> TrainResult:
    """Train ``model`` in place with ``ce_weight`` × cross-entropy plus the weighted ``losses``
    against a frozen ``teacher``. Deterministic for a given seed on CPU.

    Feature losses get their layers tapped and their adapters built before the first epoch;
    then each loss's own stage runs (:meth:`DistillLoss.pre_train`), then the main epochs, in
    which losses of weight 0 are skipped (a method used for its own stage only). Losses see
    each sample's index in ``train_set`` (``KDInputs.indices``).

    Raises:
        ValueError: A loss uses a teacher and none is given.
        ConfigError: A loss's taps or shapes do not fit the models.
    """
    if teacher is None and any(loss.uses_teacher for _, loss in losses):
        raise ValueError("distillation losses need a teacher")
    batch_size = cfg.batch_size or default_batch_size
    indexed = TensorDataset(*train_set.tensors, torch.arange(len(train_set)))
    loader = make_loader(indexed, batch_size, shuffle=True, seed=seed)
    if world().distributed:  # every rank its slice of the one-process batches
        loader = RankSlices(loader, world())
    if teacher is not None:
        teacher.eval()
    with global_batchnorm(model):  # batch statistics over all ranks, as one process has them
        step = DistillStep(model, teacher, [loss for _, loss in losses], train_set.tensors[0], len(train_set))
        try:
            stage = _PreTrainer(step, loader, cfg, progress, task)
            for _, loss_fn in losses:
                loss_fn.pre_train(stage)
            return _train_epochs(model, step, loader, cfg, val_set, losses, ce_weight, batch_size, progress, task)
        finally:
            step.close()
            model.eval()


def _train_epochs(model: nn.Module, step: DistillStep, loader: DataLoader, cfg: TrainConfig,
                  val_set: TensorDataset | None, losses: list[tuple[float, DistillLoss]], ce_weight: float,
                  batch_size: int, progress: Progress, task: str) -> TrainResult:
    loss_modules = nn.ModuleList(loss for _, loss in losses)
    active = [(weight, loss) for weight, loss in losses if weight]
    run_teacher = step.uses_teacher and any(loss.uses_teacher for _, loss in active)
    params = list(model.parameters()) + list(loss_modules.parameters())
    optimizer = _optimizer(params, cfg)
    total_steps = max(1, cfg.epochs * len(loader))
    scheduler = _scheduler(optimizer, cfg, total_steps)
    if world().distributed:  # gradients of the student and the losses' parameters averaged over ranks
        step.student = data_parallel(model, loss_modules)

    def total_loss(x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        batch = step.inputs(x, y, indices, teacher=run_teacher)
        logits = batch.student_logits
        loss = ce_weight * F.cross_entropy(logits, y) if ce_weight else logits.new_zeros(())
        for weight, loss_fn in active:
            loss = loss + weight * loss_fn(batch)
        return loss

    result = TrainResult()
    progress.start(task, total=cfg.epochs)
    for epoch in range(cfg.epochs):
        model.train()
        loss_modules.train()
        entry = {"epoch": epoch + 1, "loss": _epoch(loader, total_loss, optimizer, scheduler)}
        if val_set is not None and len(val_set) > 0:
            entry["val_accuracy"] = evaluate(model, val_set, batch_size)
        result.history.append(entry)
        status = f"loss {entry['loss']:.3f}"
        if "val_accuracy" in entry:
            status += f" · val {entry['val_accuracy']:.1%}"
        progress.advance(task, status=status)
    progress.finish(task)
    return result


class _PreTrainer:
    """The :class:`~edgekd.distill.base.PreTrainer` a loss's own stage runs with."""

    def __init__(self, step: DistillStep, loader: DataLoader, cfg: TrainConfig, progress: Progress,
                 task: str) -> None:
        self.student, self.teacher = step.student, step.teacher
        self._step, self._loader, self._cfg = step, loader, cfg
        self._progress, self._task = progress, task

    def fit(self, params: Sequence[nn.Parameter], objective: Callable[[KDInputs], torch.Tensor], epochs: int,
            what: str) -> list[float]:
        if epochs <= 0:
            return []
        optimizer = _optimizer(list(params), self._cfg)
        scheduler = _scheduler(optimizer, self._cfg, max(1, epochs * len(self._loader)))
        task = f"{self._task} · {what}"
        history = []
        self._progress.start(task, total=epochs)
        for _ in range(epochs):
            self.student.train()
            history.append(_epoch(
                self._loader, lambda x, y, i: objective(self._step.inputs(x, y, i, teacher=True)), optimizer, scheduler
            ))
            self._progress.advance(task, status=f"loss {history[-1]:.4f}")
        self._progress.finish(task)
        return history

    def batches(self, what: str) -> Iterator[KDInputs]:
        task = f"{self._task} · {what}"
        self._progress.start(task, total=1)
        for x, y, indices in self._loader:
            with torch.no_grad():
                batch = self._step.inputs(x, y, indices, teacher=True)
            yield batch
        self._progress.advance(task)
        self._progress.finish(task)


def _epoch(loader: DataLoader, loss_of: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
           optimizer: torch.optim.Optimizer, scheduler) -> float:
    """One pass over ``loader``, one optimizer step per batch; the mean loss."""
    running, batches = 0.0, 0
    for x, y, indices in loader:
        loss = loss_of(x, y, indices)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += float(loss.detach())
        batches += 1
    return running / max(batches, 1)


@torch.no_grad()
def _mean_over(model: nn.Module, dataset: TensorDataset, batch_size: int,
               per_sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
    """Mean of ``per_sample(logits, labels)`` over ``dataset`` in eval mode; the mode is restored."""
    was_training = model.training
    model.eval()
    total = 0.0
    x_all, y_all = dataset.tensors
    for start in range(0, len(y_all), batch_size):
        labels = y_all[start : start + batch_size]
        total += float(per_sample(model(x_all[start : start + batch_size]), labels).sum())
    model.train(was_training)
    return total / max(len(y_all), 1)


def evaluate(model: nn.Module, dataset: TensorDataset, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (0..1); the model's train/eval mode is restored."""
    return _mean_over(model, dataset, batch_size, lambda logits, labels: (logits.argmax(dim=1) == labels).double())


def soft_accuracy(model: nn.Module, dataset: TensorDataset, batch_size: int = 256) -> float:
    """Mean probability ``model`` gives the true class on ``dataset`` (0..1): top-1 accuracy's
    smooth cousin, which ranks near-equal models with less noise on a small split."""
    return _mean_over(model, dataset, batch_size,
                      lambda logits, labels: logits.double().softmax(dim=1).gather(1, labels[:, None]))


def _optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
