"""One training loop for every model in the chain: labels only, or labels plus distillation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from edgekd.config import TrainConfig
from edgekd.data import make_loader
from edgekd.distill.losses import DistillLoss, KDInputs
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
    against a frozen ``teacher``. Deterministic for a given seed on CPU."""
    if losses and teacher is None:
        raise ValueError("distillation losses need a teacher")
    batch_size = cfg.batch_size or default_batch_size
    loader = make_loader(train_set, batch_size, shuffle=True, seed=seed)
    loss_modules = nn.ModuleList(loss for _, loss in losses)
    params = list(model.parameters()) + list(loss_modules.parameters())
    optimizer = _optimizer(params, cfg)
    total_steps = max(1, cfg.epochs * len(loader))
    scheduler = _scheduler(optimizer, cfg, total_steps)
    if teacher is not None:
        teacher.eval()

    result = TrainResult()
    progress.start(task, total=cfg.epochs)
    for epoch in range(cfg.epochs):
        model.train()
        loss_modules.train()
        running, batches = 0.0, 0
        for x, y in loader:
            logits = model(x)
            loss = ce_weight * F.cross_entropy(logits, y) if ce_weight else logits.new_zeros(())
            if losses:
                with torch.no_grad():
                    teacher_logits = teacher(x)
                batch = KDInputs(student_logits=logits, teacher_logits=teacher_logits, labels=y)
                for weight, loss_fn in losses:
                    loss = loss + weight * loss_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += float(loss.detach())
            batches += 1
        entry = {"epoch": epoch + 1, "loss": running / max(batches, 1)}
        if val_set is not None and len(val_set) > 0:
            entry["val_accuracy"] = evaluate(model, val_set, batch_size)
        result.history.append(entry)
        status = f"loss {entry['loss']:.3f}"
        if "val_accuracy" in entry:
            status += f" · val {entry['val_accuracy']:.1%}"
        progress.advance(task, status=status)
    progress.finish(task)
    model.eval()
    return result


@torch.no_grad()
def evaluate(model: nn.Module, dataset: TensorDataset, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (0..1); the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    correct = 0
    x_all, y_all = dataset.tensors
    for start in range(0, len(y_all), batch_size):
        logits = model(x_all[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == y_all[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(y_all), 1)


def _optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
