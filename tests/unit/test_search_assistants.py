"""``assistants: auto``: which chains are tried, how the winner is picked, and that its models are kept."""

from __future__ import annotations

import pytest
from torch import nn

from edgekd.config import ModelSpec
from edgekd.search.assistants import assistant_chains, choose_chain, interpolate_size


def spec(size: int) -> ModelSpec:
    return ModelSpec(name="plain_cnn", params={"channels": [size]})


# A family with members every factor ~2 between a teacher of 256k and a student of 1k parameters.
POOL = [(spec(p), p) for p in (2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000)]
TEACHER, STUDENT = 256_000, 1_000


def sizes(chain: list[tuple[ModelSpec, int]]) -> list[int]:
    return [params for _, params in chain]


def test_interpolation_runs_from_teacher_to_student_in_log_size() -> None:
    assert interpolate_size(TEACHER, STUDENT, 0) == pytest.approx(TEACHER)
    assert interpolate_size(TEACHER, STUDENT, 1) == pytest.approx(STUDENT)
    assert interpolate_size(TEACHER, STUDENT, 0.5) == pytest.approx(16_000)  # the geometric mean


def test_chains_shortest_first_with_one_assistant_at_several_sizes() -> None:
    one = [sizes(c) for c in assistant_chains(POOL, TEACHER, STUDENT, max_assistants=2)]
    assert one == [[], [16_000], [32_000, 8_000]]  # 256k / 256^(1/3) ≈ 40k → 32k, then ≈ 6.4k → 8k (log nearest)
    three = [sizes(c) for c in assistant_chains(POOL, TEACHER, STUDENT, max_assistants=2, one_assistant_sizes=3)]
    # one assistant at 1/4, 1/2, 3/4 of the way (64k, 16k, 4k), the middle first
    assert three == [[], [16_000], [64_000], [4_000], [32_000, 8_000]]
    assert [sizes(c) for c in assistant_chains(POOL, TEACHER, STUDENT, max_assistants=0)] == [[]]


def test_chains_the_pool_cannot_fill_are_skipped_and_repeats_dropped() -> None:
    pool = [(spec(16_000), 16_000)]
    assert [sizes(c) for c in assistant_chains(pool, TEACHER, STUDENT, 2, one_assistant_sizes=3)] == [[], [16_000]]
    assert assistant_chains([], TEACHER, STUDENT, 2, one_assistant_sizes=3) == [[]]


class Trained(nn.Module):
    def __init__(self, name: str, tutor: nn.Module) -> None:
        super().__init__()
        self.name, self.tutor = name, tutor


def fake_train(scores: dict[tuple[int, ...], float], calls: list):
    """Trains nothing: the val accuracy of a model is looked up by its chain (sizes up to it)."""

    def train(model: ModelSpec, tutor: nn.Module, position: int) -> tuple[nn.Module, float]:
        path = (*getattr(tutor, "path", ()), model.params["channels"][0])
        calls.append(path)
        module = Trained(f"{path}", tutor)
        module.path = path
        assert position == len(path)
        return module, scores.get(path, 0.5)

    return train


CHAINS = [[], [(spec(16_000), 16_000)], [(spec(64_000), 64_000)], [(spec(64_000), 64_000), (spec(4_000), 4_000)]]


def test_the_best_student_wins_and_its_models_are_kept() -> None:
    calls: list = []
    scores = {(1_000,): 0.90, (16_000, 1_000): 0.93, (64_000, 1_000): 0.95, (64_000, 4_000, 1_000): 0.94}
    choice = choose_chain(nn.Identity(), spec(1_000), CHAINS, fake_train(scores, calls))
    assert [s.params["channels"] for s in choice.assistants] == [[64_000]]
    assert [row["chosen"] for row in choice.tried] == [False, False, True, False]
    assert [row["student_accuracy"] for row in choice.tried] == [0.90, 0.93, 0.95, 0.94]
    assert choice.tried[3]["assistant_accuracy"] == [0.5, 0.5] and choice.tried[3]["params"] == [64_000, 4_000]
    assert [m.path for m in choice.models] == [(64_000,), (64_000, 1_000)]
    assert choice.models[1].tutor is choice.models[0]  # the student learnt from the kept assistant
    # the 64k assistant is shared by two chains: trained once (7 trainings, not 8)
    assert calls.count((64_000,)) == 1 and len(calls) == len(set(calls)) == 7


def test_ties_go_to_fewer_assistants_and_min_gain_is_required() -> None:
    tie = {(1_000,): 0.95, (16_000, 1_000): 0.95, (64_000, 1_000): 0.95, (64_000, 4_000, 1_000): 0.95}
    choice = choose_chain(nn.Identity(), spec(1_000), CHAINS, fake_train(tie, []))
    assert choice.assistants == [] and choice.tried[0]["chosen"] and len(choice.models) == 1

    small_gain = {(1_000,): 0.90, (16_000, 1_000): 0.905, (64_000, 4_000, 1_000): 0.93}
    choice = choose_chain(nn.Identity(), spec(1_000), CHAINS, fake_train(small_gain, []), min_gain=0.01)
    # 16k adds 0.5 points, less than min_gain; two assistants add 2.5 over every shorter chain
    assert sizes([(s, s.params["channels"][0]) for s in choice.assistants]) == [64_000, 4_000]
    choice = choose_chain(nn.Identity(), spec(1_000), CHAINS, fake_train(small_gain, []), min_gain=0.05)
    assert choice.assistants == []
