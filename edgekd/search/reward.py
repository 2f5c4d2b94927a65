"""The search reward: accuracy traded against latency in the MnasNet form that Search to Distill uses.

``reward = accuracy × (latency / budget) ^ w``, with ``w = w_under`` when the candidate meets the
budget and ``w = w_over`` when it does not (Tan et al., "MnasNet: Platform-Aware Neural
Architecture Search for Mobile", CVPR 2019, eq. 2; Liu et al., "Search to Distill: Pearls Are
Everywhere but Not the Eyes", CVPR 2020, where ``accuracy`` is the student's after KD from the
teacher). MnasNet's soft constraint is ``w_under = w_over = -0.07`` (latency twice the budget
costs about 5% of reward, half the budget earns about 5%); its hard constraint is ``w_under = 0``,
``w_over = -1`` (no bonus under the budget, reward divided by how many times over it is).
"""

from __future__ import annotations

from pydantic import Field

from edgekd.config.base import StrictModel


class RewardConfig(StrictModel):
    """The exponents of the reward below and above the latency budget (both ``<= 0``)."""

    w_under: float = Field(-0.07, le=0)
    """Exponent when ``latency <= budget``: ``0`` gives no bonus for being faster."""
    w_over: float = Field(-0.07, le=0)
    """Exponent when ``latency > budget``: ``-1`` or lower makes the budget (nearly) hard."""


SOFT = RewardConfig(w_under=-0.07, w_over=-0.07)
"""MnasNet's soft latency constraint."""
HARD = RewardConfig(w_under=0.0, w_over=-1.0)
"""MnasNet's hard latency constraint."""


def reward(accuracy: float, latency_ms: float, budget_ms: float, w_under: float = -0.07,
           w_over: float = -0.07) -> float:
    """``accuracy × (latency_ms / budget_ms) ^ w``, ``w`` by which side of the budget the latency is.

    Args:
        accuracy: Accuracy of the candidate, 0..1.
        latency_ms: Its latency on the target.
        budget_ms: The latency budget.
        w_under: Exponent when ``latency_ms <= budget_ms``.
        w_over: Exponent when ``latency_ms > budget_ms``.

    Returns:
        The reward (0 when the accuracy is 0).

    Raises:
        ValueError: A latency or budget that is not positive, or an accuracy outside 0..1.
    """
    if latency_ms <= 0 or budget_ms <= 0:
        raise ValueError(f"latency and budget must be > 0 ms, got {latency_ms} and {budget_ms}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in 0..1, got {accuracy}")
    w = w_under if latency_ms <= budget_ms else w_over
    return accuracy * (latency_ms / budget_ms) ** w
