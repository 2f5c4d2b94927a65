"""The Markdown report: short enough for a GitHub or GitLab CI step summary."""

from __future__ import annotations

from typing import Any

from edgekd.report import tables
from edgekd.report.tables import Table


def _cell(text: str) -> str:
    """Escape what would break a table row or be read as HTML."""
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", " ")
    )


def _table(table: Table) -> str:
    rule = {"l": "---", "r": "---:"}
    lines = [
        "| " + " | ".join(_cell(h) for h in table.headers) + " |",
        "|" + "|".join(rule[a] for a in table.align) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _latency_blocks(
    records: list[dict[str, Any]], model_order: list[str], deployable: tuple[str, str] | None
) -> list[str]:
    blocks = [_table(tables.latency_table(records, model_order, deployable))]
    notes = tables.latency_notes(records)
    if notes:
        blocks.append("  \n".join(_cell(n) for n in notes))
    return blocks


def _layer_blocks(records: list[dict[str, Any]], model_order: list[str]) -> list[str]:
    blocks = []
    for section in tables.layer_sections(records, model_order):
        blocks += [f"#### Top layers: {_cell(section.title)}", _table(section.table)]
        if section.note:
            blocks.append(_cell(section.note))
    return blocks


def _quantization_blocks(report: dict[str, Any]) -> list[str]:
    blocks = ["### Quantization", _table(tables.quantization_table(report))]
    if report.get("precision_choice"):
        blocks += [_table(tables.precision_table(report))]
    blocks.append(_cell(f"Deployed: {report['deployable']['precision'].upper()} — {report['deployable'].get('reason', '')}"))
    if qdq := tables.tensorrt_qdq_summary(report):
        blocks.append(_cell(qdq))
    for comparison in report.get("int8_layers", []):
        blocks += [f"#### Why INT8 is (not) faster: {_cell(tables.int8_layer_title(comparison))}",
                   _table(tables.int8_layer_table(comparison)), _cell(tables.int8_layer_summary(comparison))]
    return blocks


def render_latency_markdown(records: list[dict[str, Any]]) -> str:
    """The latency table and the per-layer tables alone, as ``edgekd profile`` prints them.

    Args:
        records: Latency records, as in the report's ``latency`` list.

    Returns:
        Markdown text ending in a newline.
    """
    if not records:
        return "_No latency measured._\n"
    return "\n\n".join(_latency_blocks(records, [], None) + _layer_blocks(records, [])) + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown, its first line the budget verdict.

    Args:
        report: The report dict, as :func:`edgekd.pipeline.report_data.build_report` makes it.

    Returns:
        Markdown text ending in a newline.
    """
    deployable = report["deployable"]
    model_order = list(report["models"])
    latency = report["latency"]
    blocks = [
        f"## {tables.verdict(report['budgets'])} — {_cell(report['pipeline'])}",
        "  \n".join(_cell(line) for line in (tables.deployable_line(report), tables.preprocessing_line(report),
                                              tables.provenance_line(report)) if line),
        "### Budgets",
        _table(tables.budget_table(report["budgets"])) if report["budgets"] else "_No budgets set._",
        "### Models",
        _table(tables.model_table(report)),
    ]
    if report.get("search"):
        blocks += ["### Student search", _cell(tables.search_line(report["search"])),
                   _table(tables.search_table(report["search"]))]
    if report.get("assistants_tried"):
        blocks += ["### Teacher assistants (auto)", _table(tables.assistants_table(report["assistants_tried"]))]
    for line in (tables.training_line(report), tables.kd_gain_line(report)):
        if line:
            blocks.append(_cell(line))
    blocks.append("### Latency")
    if latency:
        blocks += _latency_blocks(latency, model_order, (deployable["model"], deployable["precision"]))
        deployable_records = [
            r for r in latency
            if r["model"] == deployable["model"] and r["precision"] == deployable["precision"]
        ]
        blocks += _layer_blocks(deployable_records, model_order)
    else:
        blocks.append("_No latency measured._")
    if report.get("latency_failures"):
        blocks.append("  \n".join(f"⚠️ {_cell(line)}" for line in tables.failure_lines(report)))
    if tables.has_quantization(report):
        blocks += _quantization_blocks(report)
    blocks.append("### Export parity")
    blocks.append(_table(tables.parity_table(report)) if report["parity"] else "_No export checked._")
    blocks.append("### Stages")
    if report["stages"]:
        blocks += [_table(tables.stage_table(report)), tables.total_seconds_line(report)]
    else:
        blocks.append("_No stage ran._")
    return "\n\n".join(blocks) + "\n"
