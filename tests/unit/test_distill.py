"""Distillation losses (golden values from the paper's formula) and the trainer."""

from __future__ import annotations

import math

import pytest
import torch

from edgekd.config import LossSpec, ModelSpec, TrainConfig
from edgekd.distill import LOSSES, KDInputs, build_losses, evaluate, train_model
from edgekd.errors import ConfigError
from edgekd.models import build_model


def test_hinton_matches_the_formula() -> None:
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    T = 2.0
    # Σ_i p_t,i (log p_t,i − log p_s,i), mean over the batch, times T² (Hinton et al. 2015).
    expected = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        zs = sum(math.exp(v / T) for v in srow)
        zt = sum(math.exp(v / T) for v in trow)
        for sv, tv in zip(srow, trow):
            pt = math.exp(tv / T) / zt
            expected += pt * (math.log(pt) - math.log(math.exp(sv / T) / zs))
    expected = expected / 2 * T * T
    loss = LOSSES.get("hinton")(temperature=T)(KDInputs(s, t, torch.tensor([0, 2])))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_hinton_gradient_reaches_the_student_only() -> None:
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5, requires_grad=True)
    LOSSES.get("hinton")()(KDInputs(s, t, torch.zeros(4, dtype=torch.long))).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_build_losses_errors_name_the_loss() -> None:
    with pytest.raises(ConfigError, match=r"hintn.*did you mean 'hinton'"):
        build_losses([LossSpec(name="hintn")], "stages.distill")
    with pytest.raises(ConfigError, match=r"no parameter 'temp'.*temperature"):
        build_losses([LossSpec(name="hinton", params={"temp": 2})], "stages.distill")
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        build_losses([LossSpec(name="hinton", params={"temperature": 0})], "stages.distill")


def _toy_data(n: int = 64) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    return torch.utils.data.TensorDataset(x, y)


def _train(seed: int, teacher=None, losses=()) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(ModelSpec(name="test_tiny"), 3, 1)
    train_model(model, _toy_data(), TrainConfig(epochs=2, lr=0.1), default_batch_size=16, seed=seed,
                teacher=teacher, losses=list(losses), ce_weight=0.5 if losses else 1.0)
    return model


def test_training_is_deterministic_for_a_seed_and_learns() -> None:
    a, b, c = _train(0), _train(0), _train(1)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))
    assert evaluate(a, _toy_data()) > 0.5


def test_distillation_leaves_the_teacher_unchanged() -> None:
    teacher = _train(0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    _train(1, teacher=teacher, losses=build_losses([LossSpec(name="hinton", weight=0.5)], "x"))
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_losses_without_teacher_are_refused() -> None:
    with pytest.raises(ValueError, match="need a teacher"):
        _train(0, teacher=None, losses=build_losses([LossSpec(name="hinton")], "x"))
