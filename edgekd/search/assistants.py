"""``assistants: auto``: how many teacher assistants, and which, from one model family.

Mirzadeh et al., "Improved Knowledge Distillation via Teacher Assistant", AAAI 2020 (TAKD): an
assistant of intermediate size bridges the capacity gap between a large teacher and a small
student, and whether it helps depends on the gap. Here chains of 0, 1, ... ``max_assistants``
assistants are tried; the ``k`` assistants of a chain are the family's candidates closest (in
log parameters) to the geometric interpolation between teacher and student sizes, and each chain
is scored by the student's accuracy after the KD proxy along the chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgekd.config import ModelSpec
from edgekd.data import DataSplits
from edgekd.models import build_model, count_params
from edgekd.progress import NullProgress, Progress
from edgekd.search.proxy import ProxyConfig, kd_proxy_train
from edgekd.search.spaces import SearchSpace


@dataclass
class AssistantChoice:
    """The chosen assistants (teacher side first) and every chain tried.

    ``tried`` rows: ``assistants`` (specs), ``params`` (their parameter counts),
    ``assistant_accuracy`` (each after its proxy), ``student_accuracy``, ``chosen``.
    """

    assistants: list[ModelSpec]
    tried: list[dict[str, Any]] = field(default_factory=list)


def assistant_sizes(teacher_params: int, student_params: int, count: int) -> list[float]:
    """``count`` sizes evenly spaced in log scale strictly between teacher and student, teacher side first."""
    ratio = math.log(student_params / teacher_params)
    return [teacher_params * math.exp(ratio * i / (count + 1)) for i in range(1, count + 1)]


def pick_assistants(pool: list[tuple[ModelSpec, int]], sizes: list[float]) -> list[tuple[ModelSpec, int]] | None:
    """For each size (decreasing), the ``(spec, params)`` of the pool nearest in log parameters,
    each smaller than the one before; ``None`` if the pool cannot give that many."""
    chosen: list[tuple[ModelSpec, int]] = []
    for size in sizes:
        below = chosen[-1][1] if chosen else math.inf
        options = [(spec, params) for spec, params in pool if params < below]
        if not options:
            return None
        chosen.append(min(options, key=lambda item: abs(math.log(item[1] / size))))
    return chosen


def choose_assistants(teacher: nn.Module, student: ModelSpec, space: SearchSpace, data: DataSplits,
                      proxy: ProxyConfig = ProxyConfig(), *, assistant_proxy: ProxyConfig | None = None,
                      max_assistants: int = 2, min_gain: float = 0.0,
                      progress: Progress = NullProgress()) -> AssistantChoice:
    """Try chains of 0 to ``max_assistants`` assistants from ``space`` and keep the best.

    Args:
        teacher: The trained teacher (any module: its size is counted).
        student: The student, of any family.
        space: The family the assistants come from; only candidates smaller than the teacher and
            larger than the student qualify.
        data: The splits.
        proxy: The KD proxy that trains the student of each chain and scores it.
        assistant_proxy: The proxy that trains each assistant (default ``proxy``). An assistant
            is a teacher: give it enough epochs to be one, or every chain loses to none.
        max_assistants: The longest chain tried (chains the pool cannot fill are skipped).
        min_gain: Accuracy a chain must add over the best shorter chain to be chosen.
        progress: Receives each proxy training.

    Returns:
        The chosen assistants (empty: distil directly) and the table of what was tried.
    """
    teacher_params = count_params(teacher)
    student_params = count_params(build_model(student, data.num_classes, data.input_shape[0]))
    pool = [(spec, count_params(build_model(spec, data.num_classes, data.input_shape[0])))
            for spec in space.candidates()]
    pool = [(spec, params) for spec, params in pool if student_params < params < teacher_params]
    tried: list[dict[str, Any]] = []
    for count in range(max_assistants + 1):
        chain = pick_assistants(pool, assistant_sizes(teacher_params, student_params, count)) if count else []
        if chain is None:
            continue
        tutor, accuracies = teacher, []
        for index, (spec, _) in enumerate(chain, start=1):
            tutor, accuracy = kd_proxy_train(spec, tutor, data, assistant_proxy or proxy, progress=progress,
                                             task=f"assistants {count} · assistant {index}")
            accuracies.append(accuracy)
        student_accuracy = kd_proxy_train(student, tutor, data, proxy, progress=progress,
                                          task=f"assistants {count} · student")[1]
        tried.append({
            "assistants": [spec.model_dump(mode="json") for spec, _ in chain],
            "params": [params for _, params in chain],
            "assistant_accuracy": accuracies,
            "student_accuracy": student_accuracy,
            "chosen": False,
        })
    best = tried[0]
    for row in tried[1:]:
        if row["student_accuracy"] > best["student_accuracy"] + min_gain:
            best = row
    best["chosen"] = True
    return AssistantChoice(assistants=[ModelSpec(**spec) for spec in best["assistants"]], tried=tried)
