"""Plots as inline SVG strings (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgekd.report.budgets import LATENCY_BUDGET_PREFIX, latency_record

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller files, searchable labels
    "font.family": "sans-serif",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
# Without these, the SVG carries a creation date and links to matplotlib and Dublin Core.
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_ROLE_COLORS = {
    "teacher": "#6b7280",
    "assistant": "#8b5cf6",
    "student": "#2563eb",
    "baseline": "#d97706",
}
_OTHER_COLOR = "#0891b2"
_DEPLOYABLE_COLOR = "#16a34a"
_BUDGET_COLOR = "#dc2626"


def _svg(draw: Callable[[Axes], None], size: tuple[float, float], salt: str) -> str:
    """Draw on a fresh figure of ``size`` inches and return it as an ``<svg>`` element.

    ``salt`` makes the SVG's internal ids unique to this plot, so that several plots
    inlined in one page do not clash, and keeps the output reproducible.
    """
    from matplotlib import rc_context
    from matplotlib.figure import Figure  # no pyplot: no global figure registry to leak into

    with rc_context({**_STYLE, "svg.hashsalt": salt}):
        figure = Figure(figsize=size, layout="constrained")
        draw(figure.add_subplot())
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata=_NO_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _budget_limit(report: dict[str, Any], name: str) -> float | None:
    return next((b["limit"] for b in report["budgets"] if b["name"] == name), None)


def accuracy_vs_latency_svg(report: dict[str, Any], target: str) -> str:
    """Scatter of accuracy against p50 latency on ``target``, one labelled point per model.

    Each model's point uses its smallest profiled batch. The deployable model is
    highlighted, estimated latencies are hollow, and the latency and accuracy
    budgets are drawn as dashed lines where set.

    Args:
        report: The report dict.
        target: A target name of the report's latency records.

    Returns:
        An ``<svg>`` element, or ``""`` when no model has both an accuracy and a
        latency on ``target``.
    """
    deployable = (report["deployable"]["model"], report["deployable"]["precision"])
    on_target = [r for r in report["latency"] if r["target"] == target]
    variants = list(dict.fromkeys((r["model"], r["precision"]) for r in on_target))
    points = []
    for model, precision in variants:
        accuracy = report["models"].get(model, {}).get("accuracy")
        if accuracy is None:
            continue
        record = latency_record(on_target, model, target, precision)
        several = sum(m == model for m, _ in variants) > 1
        label = f"{model} ({precision})" if several else model
        points.append((model, precision, label, record, 100 * accuracy))
    if not points:
        return ""
    max_ms = _budget_limit(report, LATENCY_BUDGET_PREFIX + target)
    min_accuracy = _budget_limit(report, "min_accuracy")
    batches = sorted({record["batch"] for *_, record, _ in points})

    def draw(ax: Axes) -> None:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        for model, precision, label, record, accuracy in points:
            role = report["models"][model].get("role")
            is_deployable = (model, precision) == deployable
            color = _DEPLOYABLE_COLOR if is_deployable else _ROLE_COLORS.get(role, _OTHER_COLOR)
            ax.scatter(
                record["p50_ms"], accuracy,
                s=90 if is_deployable else 40,
                marker="*" if is_deployable else "o",
                facecolors="none" if record["estimated"] else color,
                edgecolors=color, linewidths=1.5, zorder=3,
            )
            note = " (estimated)" if record["estimated"] else ""
            ax.annotate(
                label + note, (record["p50_ms"], accuracy), xytext=(6, 4), textcoords="offset points",
                fontweight="bold" if is_deployable else "normal", color="#111827",
            )
        xs = [record["p50_ms"] for *_, record, _ in points] + ([max_ms] if max_ms else [])
        if min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if max_ms is not None:
            ax.axvline(max_ms, color=_BUDGET_COLOR, linestyle="--", linewidth=1,
                       label=f"max p50 {max_ms:g} ms")
        if min_accuracy is not None:
            ax.axhline(100 * min_accuracy, color=_BUDGET_COLOR, linestyle=":", linewidth=1,
                       label=f"min accuracy {100 * min_accuracy:g}%")
        if max_ms is not None or min_accuracy is not None:
            ax.legend(loc="lower right", frameon=False)
        batch = f"batch {batches[0]}" if len(batches) == 1 else "smallest batch"
        ax.set_xlabel(f"p50 latency (ms), {batch}")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"Accuracy vs latency on {target}")
        ax.margins(0.2)

    return _svg(draw, (5.0, 3.4), f"edgekd-accuracy-{target}")


def _shorten(name: str, width: int = 36) -> str:
    """Keep the end of a long layer path, where the distinguishing part is."""
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def layer_times_svg(record: dict[str, Any]) -> str:
    """Horizontal bars of the mean time of the record's top layers, slowest on top.

    Args:
        record: A latency record with ``layers``.

    Returns:
        An ``<svg>`` element, or ``""`` when the record has no layers.
    """
    layers = sorted(record.get("layers") or [], key=lambda x: x["mean_ms"])
    if not layers:
        return ""

    def draw(ax: Axes) -> None:
        positions = range(len(layers))  # numbers, not names: equal names stay separate bars
        bars = ax.barh(positions, [x["mean_ms"] for x in layers], color=_ROLE_COLORS["student"])
        ax.set_yticks(positions, [f"{_shorten(x['name'])} ({x['op_type']})" for x in layers])
        ax.bar_label(bars, labels=[f"{100 * x['share']:.0f}%" for x in layers], padding=3, fontsize=7)
        ax.set_xlabel("mean time (ms)")
        ax.set_title(
            f"{record['model']} on {record['target']} ({record['precision']}, batch {record['batch']})"
        )
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.15)

    salt = f"edgekd-layers-{record['model']}-{record['target']}-{record['precision']}-{record['batch']}"
    return _svg(draw, (5.0, 0.9 + 0.24 * len(layers)), salt)


def search_svg(search: dict[str, Any]) -> str:
    """The search's trials: KD-proxy score against p50, the Pareto front joined, the budget as a
    vertical line, the chosen student as a star."""
    trials = [t for t in search["trials"] if t["latency_ms"] is not None and t["score"] is not None]
    if not trials:
        return ""
    front = sorted(search.get("pareto") or [], key=lambda t: t["latency_ms"])
    chosen = search["best_trial"]["number"]

    def draw(ax: Axes) -> None:
        ax.scatter([t["latency_ms"] for t in trials], [100 * t["score"] for t in trials], s=25,
                   color=_OTHER_COLOR, label="trials", zorder=2)
        if front:
            ax.plot([t["latency_ms"] for t in front], [100 * t["score"] for t in front], color="#2563eb",
                    linewidth=1, label="Pareto front", zorder=2)
        best = next(t for t in trials if t["number"] == chosen)
        ax.scatter(best["latency_ms"], 100 * best["score"], s=120, marker="*", color=_DEPLOYABLE_COLOR,
                   label="chosen", zorder=3)
        ax.axvline(search["budget_ms"], color=_BUDGET_COLOR, linestyle="--", linewidth=1,
                   label=f"budget {search['budget_ms']:g} ms")
        ax.set_xlabel(f"p50 latency (ms) on {search['target']}, batch 1")
        ax.set_ylabel(f"KD-proxy {search['score'].replace('_', ' ')} (%)")
        ax.set_title("Student search")
        ax.legend(loc="lower right", frameon=False)
        ax.margins(0.15)

    return _svg(draw, (5.0, 3.4), "edgekd-search")
