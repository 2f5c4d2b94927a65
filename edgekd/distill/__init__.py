"""Distillation: the registered losses and the trainer that applies them."""

from edgekd.distill.losses import LOSSES, DistillLoss, KDInputs, build_losses
from edgekd.distill.trainer import TrainResult, evaluate, train_model

__all__ = ["LOSSES", "DistillLoss", "KDInputs", "TrainResult", "build_losses", "evaluate", "train_model"]
