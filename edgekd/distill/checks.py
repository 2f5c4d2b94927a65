"""Checks of a chain's losses that need no data: names, parameters and tap paths."""

from __future__ import annotations

from itertools import pairwise

from torch import nn

from edgekd.config import LossSpec
from edgekd.distill.features import resolve_taps
from edgekd.distill.losses import build_losses
from edgekd.errors import ConfigError


def check_losses(specs: list[LossSpec], where: str, teacher: nn.Module | None, learners: list[nn.Module],
                 untappable_teacher: str | None = None) -> None:
    """Build ``specs`` and resolve every feature loss's taps on each (tutor, learner) step.

    Args:
        specs: The loss specs of a chain.
        where: Their owner's config path, for messages.
        teacher: The teacher as built from its spec, or ``None`` when it is only known at run
            time (a factory); then the first step is checked when training starts.
        learners: The models trained in order (assistants, then the student generations), each
            the tutor of the next.
        untappable_teacher: What the teacher is when its layers cannot be tapped (``"a
            TorchScript module"``), or ``None``.

    Raises:
        ConfigError: Unknown loss or parameter, a feature loss with an untappable teacher, or a
            tap path that a model lacks (the message lists the valid paths).
    """
    losses = [loss for _, loss in build_losses(specs, where) if loss.needs_features]
    if losses and untappable_teacher:
        raise ConfigError(
            f"{losses[0].label}: this method reads layer features, but the teacher is {untappable_teacher},"
            " whose layers cannot be tapped; give the teacher as weights of a registered model or as a"
            " factory, or use a logit loss (hinton, tf_kd, noisy_teacher)"
        )
    for tutor, learner in pairwise([teacher, *learners]):
        if tutor is not None:
            for loss in losses:
                resolve_taps(loss, learner, tutor)
