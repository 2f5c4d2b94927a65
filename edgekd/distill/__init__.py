"""Distillation: the registered losses, feature taps and adapters, and the trainer."""

from edgekd.distill.base import PreTrainer
from edgekd.distill.losses import BORN_AGAIN_PAPER, LOSSES, DistillLoss, KDInputs, build_losses
from edgekd.distill.trainer import TrainResult, evaluate, soft_accuracy, train_model

__all__ = ["BORN_AGAIN_PAPER", "LOSSES", "DistillLoss", "KDInputs", "PreTrainer", "TrainResult", "build_losses",
           "evaluate", "soft_accuracy", "train_model"]
