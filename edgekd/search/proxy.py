"""The KD proxy: how well *this* teacher teaches a candidate in a short training.

Search to Distill (Liu et al., CVPR 2020) ranks candidates by their accuracy after
distillation from the teacher, not after training on labels alone: the best student
depends on the teacher. A full distillation per candidate is too slow, so the proxy
trains for a few epochs on a fixed-seed fraction of the train split and scores on val, by
default with soft accuracy (the mean probability of the true class): on a val split of a few
hundred images it predicts the ranking after full distillation better than top-1 accuracy
(``bench/proxy_fidelity.py``, docs/search.md).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from torch import nn
from torch.utils.data import TensorDataset

from edgekd.config import LossSpec, ModelSpec, TrainConfig
from edgekd.config.base import StrictModel
from edgekd.data import DataSplits
from edgekd.distill import build_losses, evaluate, soft_accuracy, train_model
from edgekd.errors import DataError
from edgekd.models import build_model
from edgekd.progress import NullProgress, Progress


def _hinton() -> list[LossSpec]:
    return [LossSpec(name="hinton", weight=0.9, params={"temperature": 4.0})]


class ProxyConfig(StrictModel):
    """The short KD training that scores a candidate."""

    epochs: PositiveInt = 1
    data_fraction: float = Field(0.5, gt=0, le=1)
    """Fraction of the train split used, drawn once by ``seed``."""
    lr: PositiveFloat = 0.05
    optimizer: Literal["sgd", "adamw"] = "sgd"
    batch_size: PositiveInt = 64
    losses: list[LossSpec] = Field(default_factory=_hinton)
    ce_weight: float = Field(0.1, ge=0)
    seed: int = 0
    """Fixes the subset, the candidate's initial weights and the batch order."""
    score: Literal["soft_accuracy", "accuracy"] = "soft_accuracy"
    """What ranks candidates on val: the mean probability of the true class, or top-1 accuracy."""


PROXY_SCORES = {"soft_accuracy": soft_accuracy, "accuracy": evaluate}
"""``ProxyConfig.score`` → ``f(model, dataset) -> 0..1``."""


def proxy_subset(train: TensorDataset, fraction: float, seed: int) -> TensorDataset:
    """A fixed-seed random ``fraction`` of ``train`` (at least one sample)."""
    count = max(1, round(len(train) * fraction))
    indices = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:count]
    return TensorDataset(*(tensor[indices] for tensor in train.tensors))


def kd_proxy_train(spec: ModelSpec, teacher: nn.Module, data: DataSplits, proxy: ProxyConfig = ProxyConfig(), *,
                   progress: Progress = NullProgress(), task: str = "proxy") -> tuple[nn.Module, float]:
    """Distil ``teacher`` into a fresh ``spec`` with the proxy's short training.

    Args:
        spec: The candidate.
        teacher: The model it learns from (kept frozen, in eval mode).
        data: The splits; training uses a subset of ``train``, the score is taken on ``val``.
        proxy: Epochs, data fraction, optimizer, losses, seed and score.
        progress: Receives the epochs.
        task: The progress task name.

    Returns:
        The trained candidate (eval mode) and its val score (``proxy.score``), 0..1.
        Deterministic for a given ``proxy.seed`` on CPU.

    Raises:
        DataError: The val split is empty.
        ConfigError: A loss is unknown or does not fit the models.
        ModelError: ``spec`` does not build.
    """
    if len(data.val) == 0:
        raise DataError("the KD proxy scores candidates on the val split, which is empty; set data.val_fraction > 0")
    torch.manual_seed(proxy.seed)
    model = build_model(spec, data.num_classes, data.input_shape[0])
    train = TrainConfig(epochs=proxy.epochs, lr=proxy.lr, optimizer=proxy.optimizer, batch_size=proxy.batch_size)
    train_model(
        model, proxy_subset(data.train, proxy.data_fraction, proxy.seed), train,
        default_batch_size=proxy.batch_size, seed=proxy.seed, teacher=teacher,
        losses=build_losses(proxy.losses, "search.proxy"), ce_weight=proxy.ce_weight,
        progress=progress, task=task,
    )
    return model.eval(), PROXY_SCORES[proxy.score](model, data.val)
