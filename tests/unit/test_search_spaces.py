"""Search spaces (sampling, validation, block decomposition) and the MnasNet reward: no training."""

from __future__ import annotations

import math

import optuna
import pytest

from edgekd.config import ModelSpec
from edgekd.errors import ConfigError
from edgekd.models import build_model, count_macs, count_params
from edgekd.search import HARD, SEARCH_SPACES, SOFT, build_space, candidate_blocks, pareto_front, reward
from edgekd.search.study import choose

TINY = {
    "resnet_cifar": {"depth": [8, 14], "width": [4, 8]},
    "mobilenet": {"width_mult": [0.5, 1.0], "expansion": [2, 4], "kernel_size": [3, 5],
                  "blocks": [[1], [1, 2]], "channels": [[8], [16]], "last_channels": [32]},
    "plain_cnn": {"channels": [[4, 8], [8, 16]], "kernel_size": [3, 5]},
}


def test_the_families_have_spaces() -> None:
    assert {"resnet_cifar", "mobilenet", "plain_cnn"} <= set(SEARCH_SPACES.names())
    assert set(TINY) == set(SEARCH_SPACES.names())


@pytest.mark.parametrize("name", SEARCH_SPACES.names())
def test_candidates_enumerate_the_choices_and_build(name: str) -> None:
    space = build_space(name, TINY[name])
    candidates = list(space.candidates())
    assert len(candidates) == len(space) == math.prod(len(v) for v in space.options().values())
    assert len({str(c.params) for c in candidates}) == len(candidates)
    for spec in candidates:
        assert spec.name == name
        build_model(spec, 10, 1)
    assert space.to_dict() == {"name": name, "choices": space.choices.model_dump(mode="json")}
    assert build_space(name, space.to_dict()["choices"]).to_dict() == space.to_dict()


@pytest.mark.parametrize("name", SEARCH_SPACES.names())
def test_sample_picks_within_the_choices(name: str) -> None:
    space = build_space(name, TINY[name])
    candidates = [c.params for c in space.candidates()]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(6):
        trial = study.ask()
        spec = space.sample(trial)
        assert spec.params in candidates
        assert set(trial.params) == set(space.options())
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("name", "choices", "key"),
    [
        ("resnet_cifar", {"depth": [], "width": [8]}, "depth"),
        ("resnet_cifar", {"depth": [8, 10], "width": [8]}, "search.space.depth: choice 10"),
        ("resnet_cifar", {"depth": [8, 8], "width": [8]}, "depth"),
        ("resnet_cifar", {"depth": [8], "widht": [8]}, "widht"),
        ("mobilenet", {"kernel_size": [3, 4]}, "search.space.kernel_size: choice 4"),
        ("mobilenet", {"blocks": [[1], [1, 2]], "channels": [[8], [16], [24]]}, "search.space.channels"),
        ("mobilenet", {"blocks": [[1], []]}, "blocks.1"),
        ("plain_cnn", {"channels": [[4], [0]]}, "channels.1"),
        ("resnet", {}, "did you mean 'resnet_cifar'"),
    ],
)
def test_bad_spaces_name_the_key(name: str, choices: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")) as caught:
        build_space(name, choices)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", SEARCH_SPACES.names())
def test_blocks_add_up_to_the_network(name: str) -> None:
    """The decomposition mirrors the family: same parameters and MACs as the built network."""
    shape = (1, 8, 8)
    for spec in list(build_space(name, TINY[name]).candidates())[::3]:
        blocks = candidate_blocks(spec, shape, 10)
        model = build_model(spec, 10, shape[0])
        assert blocks[0].input_shape == shape and blocks[-1].op == "head"
        assert sum(count_params(b.build()) for b in blocks) == count_params(model)
        assert sum(count_macs(b.build(), b.input_shape) for b in blocks) == count_macs(model, shape)


def test_blocks_of_a_spec_without_every_parameter_use_the_family_defaults() -> None:
    full = candidate_blocks(ModelSpec(name="resnet_cifar", params={"depth": 20, "width": 16}), (3, 16, 16), 10)
    assert candidate_blocks(ModelSpec(name="resnet_cifar"), (3, 16, 16), 10) == full
    assert [b.signature for b in full][:2] == ["conv_bn:c3-16:k3:s1:hw16x16:e1", "basic:c16-16:k3:s1:hw16x16:e1"]
    with pytest.raises(ConfigError, match="test_tiny"):
        candidate_blocks(ModelSpec(name="test_tiny"), (3, 16, 16), 10)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0.9, 10.0, 10.0), 0.9),                              # on budget: the accuracy
        ((0.8, 5.0, 10.0), 0.8 * 0.5 ** -0.07),                # soft, under: +4.97%
        ((0.8, 20.0, 10.0), 0.8 * 2.0 ** -0.07),               # soft, over: -4.74%
        ((0.8, 5.0, 10.0, 0.0, -1.0), 0.8),                    # hard, under: no bonus
        ((0.8, 20.0, 10.0, 0.0, -1.0), 0.4),                   # hard, over: divided by 2
        ((0.0, 20.0, 10.0), 0.0),
    ],
)
def test_reward_matches_the_mnasnet_formula(args: tuple, expected: float) -> None:
    assert reward(*args) == pytest.approx(expected, rel=1e-12)


def test_reward_hand_values_and_presets() -> None:
    assert reward(0.8, 5.0, 10.0) == pytest.approx(0.83977, abs=1e-5)
    assert reward(0.8, 20.0, 10.0) == pytest.approx(0.76211, abs=1e-5)
    assert (SOFT.w_under, SOFT.w_over) == (-0.07, -0.07)
    assert (HARD.w_under, HARD.w_over) == (0.0, -1.0)
    for bad in ((0.5, 0.0, 1.0), (0.5, 1.0, 0.0), (1.5, 1.0, 1.0)):
        with pytest.raises(ValueError):
            reward(*bad)


def _row(number: int, accuracy: float, latency: float, budget: float = 1.0) -> dict:
    return {"number": number, "spec": {"name": "m", "params": {"i": number}}, "accuracy": accuracy, "score": accuracy,
            "latency_ms": latency, "reward": reward(accuracy, latency, budget), "met_budget": latency <= budget}


def test_pareto_front_and_the_chosen_student() -> None:
    rows = [_row(0, 0.90, 2.0), _row(1, 0.80, 0.5), _row(2, 0.70, 0.6), _row(3, 0.85, 0.9), _row(4, 0.95, 3.0)]
    assert [r["number"] for r in pareto_front(rows)] == [1, 3, 0, 4]
    assert choose(rows, "nsga2")["number"] == 3          # the most accurate front member within 1 ms
    assert choose(rows, "tpe")["number"] == 3            # the best reward within 1 ms
    over = [_row(0, 0.9, 2.0), _row(1, 0.5, 1.5)]
    assert choose(over, "tpe")["number"] == 1 and not choose(over, "nsga2")["met_budget"]  # the fastest


def test_same_architecture_fills_in_defaults() -> None:
    from edgekd.search.spaces import same_architecture

    given = ModelSpec(name="plain_cnn", params={"channels": [16, 32], "kernel_size": 3})
    assert same_architecture(ModelSpec(name="plain_cnn"), given)  # the factory's default is the tuple (16, 32)
    assert not same_architecture(ModelSpec(name="plain_cnn", params={"channels": [16, 16]}), given)
    assert not same_architecture(ModelSpec(name="resnet_cifar", params={"depth": 8, "width": 16}), given)
