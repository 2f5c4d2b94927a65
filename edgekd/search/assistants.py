"""``assistants: auto``: how many teacher assistants, and which, from one model family.

Mirzadeh et al., "Improved Knowledge Distillation via Teacher Assistant", AAAI 2020 (TAKD): an
assistant of intermediate size bridges the capacity gap between a large teacher and a small
student, and whether it helps depends on the gap (and on the assistant's size). Here chains of
0, 1, ... ``max_assistants`` assistants are tried; the ``k`` assistants of a chain are the
family's candidates closest (in log parameters) to the geometric interpolation between teacher
and student sizes, and one assistant is also tried at other points of that interpolation
(``one_assistant_sizes``). Each chain is trained teacher → assistants → student and scored by
the student's val accuracy at its end; the trained models of the chosen chain are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgekd.config import ModelSpec
from edgekd.data import DataSplits
from edgekd.models import build_model, count_params
from edgekd.progress import NullProgress, Progress
from edgekd.search.proxy import ProxyConfig, kd_proxy_train
from edgekd.search.spaces import SearchSpace

TrainStep = Callable[[ModelSpec, nn.Module, int], tuple[nn.Module, float]]
"""``train(spec, tutor, position) -> (trained model, val accuracy 0..1)``: distil ``tutor`` into a
fresh ``spec``; ``position`` is the model's place in its chain (1 = first after the teacher)."""


@dataclass
class AssistantChoice:
    """The chosen assistants (teacher side first), every chain tried, and the chosen chain's models.

    ``tried`` rows: ``assistants`` (specs), ``params`` (their parameter counts),
    ``assistant_accuracy`` (each one's val accuracy), ``student_accuracy`` (the student's val
    accuracy at the end of the chain), ``chosen``. ``models`` are the chosen chain's trained
    assistants followed by its student, so a caller need not train them again.
    """

    assistants: list[ModelSpec]
    tried: list[dict[str, Any]] = field(default_factory=list)
    models: list[nn.Module] = field(default_factory=list)


def assistant_sizes(teacher_params: int, student_params: int, count: int) -> list[float]:
    """``count`` sizes evenly spaced in log scale strictly between teacher and student, teacher side first."""
    return [interpolate_size(teacher_params, student_params, i / (count + 1)) for i in range(1, count + 1)]


def interpolate_size(teacher_params: int, student_params: int, position: float) -> float:
    """``P_t^(1−position) · P_s^position``: 0 is the teacher's size, 1 the student's."""
    return teacher_params * math.exp(math.log(student_params / teacher_params) * position)


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


def assistant_chains(pool: list[tuple[ModelSpec, int]], teacher_params: int, student_params: int,
                     max_assistants: int = 2, one_assistant_sizes: int = 1) -> list[list[tuple[ModelSpec, int]]]:
    """The chains to try, shortest first, each once: none; one assistant at ``one_assistant_sizes``
    points evenly spaced in log size between teacher and student (the middle first); for ``k >= 2``
    the ``k`` sizes evenly spaced. ``pool`` holds the family's candidates strictly between the two."""
    chains: list[list[tuple[ModelSpec, int]]] = [[]]
    middle = (one_assistant_sizes + 1) / 2
    for count in range(1, max_assistants + 1):
        if count == 1:
            positions = sorted(range(1, one_assistant_sizes + 1), key=lambda j: (abs(j - middle), j))
            options = [[interpolate_size(teacher_params, student_params, j / (one_assistant_sizes + 1))]
                       for j in positions]
        else:
            options = [assistant_sizes(teacher_params, student_params, count)]
        for sizes in options:
            chain = pick_assistants(pool, sizes)
            if chain is not None and chain not in chains:
                chains.append(chain)
    return chains


def family_pool(space: SearchSpace, data: DataSplits, teacher_params: int,
                student_params: int) -> list[tuple[ModelSpec, int]]:
    """``(spec, params)`` of the space's candidates strictly smaller than the teacher and larger than the student."""
    pool = [(spec, count_params(build_model(spec, data.num_classes, data.input_shape[0])))
            for spec in space.candidates()]
    return [(spec, params) for spec, params in pool if student_params < params < teacher_params]


def choose_chain(teacher: nn.Module, student: ModelSpec, chains: list[list[tuple[ModelSpec, int]]],
                 train: TrainStep, *, min_gain: float = 0.0) -> AssistantChoice:
    """Train every chain with ``train`` and keep the one whose student scores best.

    Chains that share their first assistants share those trained models (``train`` must be
    deterministic for a spec, tutor and position). A chain with more assistants is chosen only if
    its student beats every chain with fewer by more than ``min_gain``; among chains with as many
    assistants, the first of the best wins.
    """
    trained: dict[tuple[str, ...], tuple[nn.Module, float]] = {}
    tried: list[dict[str, Any]] = []
    models: list[list[nn.Module]] = []
    for chain in chains:
        tutor, accuracies, prefix, kept = teacher, [], (), []
        for position, spec in enumerate([*(s for s, _ in chain), student], start=1):
            prefix = (*prefix, spec.model_dump_json())
            if prefix not in trained:
                trained[prefix] = train(spec, tutor, position)
            tutor, accuracy = trained[prefix]
            accuracies.append(accuracy)
            kept.append(tutor)
        tried.append({
            "assistants": [spec.model_dump(mode="json") for spec, _ in chain],
            "params": [params for _, params in chain],
            "assistant_accuracy": accuracies[:-1],
            "student_accuracy": accuracies[-1],
            "chosen": False,
        })
        models.append(kept)
    def beats_shorter(row: dict[str, Any]) -> bool:
        return all(row["student_accuracy"] > other["student_accuracy"] + min_gain
                   for other in tried if len(other["assistants"]) < len(row["assistants"]))

    eligible = [index for index, row in enumerate(tried) if beats_shorter(row)]  # the empty chain always is
    best = max(eligible, key=lambda i: (tried[i]["student_accuracy"], -len(tried[i]["assistants"]), -i))
    tried[best]["chosen"] = True
    return AssistantChoice(assistants=[ModelSpec(**spec) for spec in tried[best]["assistants"]], tried=tried,
                           models=models[best])


def choose_assistants(teacher: nn.Module, student: ModelSpec, space: SearchSpace, data: DataSplits,
                      proxy: ProxyConfig = ProxyConfig(), *, assistant_proxy: ProxyConfig | None = None,
                      max_assistants: int = 2, one_assistant_sizes: int = 1, min_gain: float = 0.0,
                      train: TrainStep | None = None, progress: Progress = NullProgress()) -> AssistantChoice:
    """Try chains of 0 to ``max_assistants`` assistants from ``space`` and keep the best.

    Args:
        teacher: The trained teacher (any module: its size is counted).
        student: The student, of any family.
        space: The family the assistants come from; only candidates smaller than the teacher and
            larger than the student qualify.
        data: The splits.
        proxy: Without ``train``: the KD proxy that trains the student of each chain and scores it.
        assistant_proxy: Without ``train``: the proxy that trains each assistant (default
            ``proxy``). An assistant is a teacher: give it enough epochs to be one, or every
            chain loses to none.
        max_assistants: The longest chain tried (chains the pool cannot fill are skipped).
        one_assistant_sizes: How many sizes a single assistant is tried at (evenly spaced in log
            size between teacher and student; TAKD: the size decides whether it helps).
        min_gain: Val accuracy a chain must add over every shorter chain to be chosen.
        train: Trains one model of a chain and scores it on val, e.g. with the distill stage's
            own training, so that the chosen chain's models are final; default the proxies.
        progress: Receives each proxy training (``train`` reports its own).

    Returns:
        The chosen assistants (empty: distil directly), the table of what was tried and the
        chosen chain's trained models.
    """
    teacher_params = count_params(teacher)
    student_params = count_params(build_model(student, data.num_classes, data.input_shape[0]))
    pool = family_pool(space, data, teacher_params, student_params)
    chains = assistant_chains(pool, teacher_params, student_params, max_assistants, one_assistant_sizes)
    if train is None:
        def train(spec: ModelSpec, tutor: nn.Module, position: int) -> tuple[nn.Module, float]:
            config = proxy if spec == student else (assistant_proxy or proxy)
            return kd_proxy_train(spec, tutor, data, config, progress=progress, task=f"assistants · {position}")
    return choose_chain(teacher, student, chains, train, min_gain=min_gain)
