"""Budgets: limits on the deployable model, checked against the numbers in the report."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekd.config.pipeline import BudgetsConfig

LATENCY_BUDGET_PREFIX = "max_latency_p50_ms@"


def latency_record(
    records: Iterable[dict[str, Any]], model: str, target: str, precision: str | None = None
) -> dict[str, Any] | None:
    """The latency record of ``model`` on ``target`` at the smallest batch size profiled.

    Args:
        records: The report's ``latency`` list.
        model: A model name.
        target: A target name.
        precision: Only records of this precision; ``None`` accepts any.

    Returns:
        The matching record with the smallest ``batch`` (a measured one before an
        estimated one of the same batch), or ``None`` where there is none.
    """
    matches = [
        r
        for r in records
        if r["model"] == model
        and r["target"] == target
        and (precision is None or r["precision"] == precision)
    ]
    return min(matches, key=lambda r: (r["batch"], bool(r["estimated"])), default=None)


def _result(name: str, limit: float, value: float | None, *, at_most: bool) -> dict[str, Any]:
    if value is None:
        ok = False
    else:
        ok = value <= limit if at_most else value >= limit
    return {"name": name, "limit": limit, "value": value, "ok": ok}


def evaluate_budgets(budgets: BudgetsConfig, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Check every budget that is set against the deployable model of ``report``.

    A budget whose number is missing from the report (no latency record for the
    target, no accuracy) is missed, with ``value`` ``None``.

    Args:
        budgets: The pipeline's budgets.
        report: The report dict; ``deployable``, ``models`` and ``latency`` are read.

    Returns:
        One ``{"name", "limit", "value", "ok"}`` dict per budget set:
        ``min_accuracy``, ``max_size_bytes``, then ``max_latency_p50_ms@<target>``
        in the order the targets are configured.
    """
    deployable = report["deployable"]
    name = deployable["model"]
    model = report["models"].get(name, {})
    results = []
    if budgets.min_accuracy is not None:
        results.append(
            _result("min_accuracy", budgets.min_accuracy, model.get("accuracy"), at_most=False)
        )
    if budgets.max_size_bytes is not None:
        results.append(
            _result("max_size_bytes", budgets.max_size_bytes, model.get("size_bytes"), at_most=True)
        )
    for target, limit in budgets.max_latency_p50_ms.items():
        record = latency_record(report["latency"], name, target, deployable["precision"])
        value = None if record is None else record["p50_ms"]
        results.append(_result(LATENCY_BUDGET_PREFIX + target, limit, value, at_most=True))
    return results


def budgets_met(results: list[dict[str, Any]]) -> bool:
    """Whether every budget result is ok (``True`` when no budget is set)."""
    return all(r["ok"] for r in results)
