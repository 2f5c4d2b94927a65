"""The HTML report: one self-contained file (inline CSS and SVG plots, no script, no URL)."""

from __future__ import annotations

from html import escape
from typing import Any

from edgekd.report import plots, tables
from edgekd.report.budgets import budgets_met
from edgekd.report.tables import Table

_CSS = """
:root { --ok: #15803d; --bad: #b91c1c; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #111827; background: #f9fafb; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 16px 0 6px; }
.meta, .note, footer { color: var(--muted); }
.verdict { margin: 16px 0 8px; padding: 10px 14px; border-radius: 6px; font-size: 16px;
           font-weight: 600; }
.verdict.ok { background: #dcfce7; color: var(--ok); }
.verdict.bad { background: #fee2e2; color: var(--bad); }
table { border-collapse: collapse; background: #fff; margin: 4px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
         white-space: nowrap; }
th { background: #f3f4f6; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.deployable td { font-weight: 600; background: #f0fdf4; }
tr.estimated td { color: var(--muted); font-style: italic; }
tr.missed td { background: #fef2f2; color: var(--bad); }
.scroll { overflow-x: auto; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
.pair { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
figure svg { display: block; max-width: 100%; height: auto; }
footer { margin-top: 32px; font-size: 12px; }
"""


def _table(table: Table) -> str:
    def cells(tag: str, texts: tuple[str, ...]) -> str:
        return "".join(
            f'<{tag} class="num">{escape(t)}</{tag}>' if a == "r" else f"<{tag}>{escape(t)}</{tag}>"
            for t, a in zip(texts, table.align, strict=True)
        )

    rows = "\n".join(
        f'<tr class="{escape(tags)}">{cells("td", row)}</tr>' if tags else f"<tr>{cells('td', row)}</tr>"
        for row, tags in zip(table.rows, table.tags, strict=True)
    )
    return (
        f'<div class="scroll"><table>\n<thead><tr>{cells("th", table.headers)}</tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _accuracy_plots(report: dict[str, Any]) -> list[str]:
    if not report["latency"]:
        return [_note("No latency measured, so no accuracy-vs-latency plot.")]
    figures = []
    for target in dict.fromkeys(r["target"] for r in report["latency"]):
        svg = plots.accuracy_vs_latency_svg(report, target)
        if svg:
            figures.append(f"<figure>{svg}</figure>")
        else:
            figures.append(_note(f"No model has both an accuracy and a latency on {target}."))
    return ['<div class="plots">', *figures, "</div>"]


def _latency(report: dict[str, Any]) -> list[str]:
    latency = report["latency"]
    if not latency:
        return [_note("No latency measured.")]
    deployable = report["deployable"]
    model_order = list(report["models"])
    parts = [_table(tables.latency_table(latency, model_order, (deployable["model"], deployable["precision"])))]
    parts += [_note(n) for n in tables.latency_notes(latency)]
    deployable_records = [
        r for r in latency
        if r["model"] == deployable["model"] and r["precision"] == deployable["precision"]
    ]
    for section in tables.layer_sections(deployable_records, model_order):
        parts += [
            f"<h3>Top layers: {escape(section.title)}</h3>",
            f'<div class="pair"><figure>{plots.layer_times_svg(section.record)}</figure>',
            _table(section.table),
            "</div>",
            *([_note(section.note)] if section.note else []),
        ]
    return parts


def _search(report: dict[str, Any]) -> list[str]:
    parts = []
    search = report.get("search")
    if search:
        parts += ["<h2>Student search</h2>", _note(tables.search_line(search)), plots.search_svg(search),
                  _table(tables.search_table(search))]
    if report.get("assistants_tried"):
        parts += ["<h2>Teacher assistants (auto)</h2>", _table(tables.assistants_table(report["assistants_tried"]))]
    return parts


def _quantization(report: dict[str, Any]) -> list[str]:
    parts = ["<h2>Quantization</h2>", _table(tables.quantization_table(report))]
    if report.get("precision_choice"):
        parts.append(_table(tables.precision_table(report)))
    deployable = report["deployable"]
    parts.append(_note(f"Deployed: {deployable['precision'].upper()} — {deployable.get('reason', '')}"))
    if qdq := tables.tensorrt_qdq_summary(report):
        parts.append(_note(qdq))
    for comparison in report.get("int8_layers", []):
        parts += [f"<h3>Why INT8 is (not) faster: {escape(tables.int8_layer_title(comparison))}</h3>",
                  _table(tables.int8_layer_table(comparison)), _note(tables.int8_layer_summary(comparison))]
    return parts


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML page with plots.

    Every string taken from the report is HTML-escaped; the plots are inline SVG.

    Args:
        report: The report dict, as :func:`edgekd.pipeline.report_data.build_report` makes it.

    Returns:
        The HTML document.
    """
    verdict_class = "ok" if budgets_met(report["budgets"]) else "bad"
    gain = tables.kd_gain_line(report)
    training = tables.training_line(report)
    inputs = tables.preprocessing_line(report)
    body = [
        "<header>",
        f"<h1>edgekd report: {escape(report['pipeline'])}</h1>",
        f'<p class="meta">{escape(tables.provenance_line(report))}</p>',
        "</header>",
        f'<div class="verdict {verdict_class}">{escape(tables.verdict(report["budgets"]))}</div>',
        f"<p>{escape(tables.deployable_line(report))}</p>",
        f"<p>{escape(inputs)}</p>" if inputs else "",
        "<h2>Budgets</h2>",
        _table(tables.budget_table(report["budgets"])) if report["budgets"] else _note("No budgets set."),
        "<h2>Models</h2>",
        _table(tables.model_table(report)),
        f"<p>{escape(training)}</p>" if training else "",
        f"<p>{escape(gain)}</p>" if gain else "",
        *_search(report),
        "<h2>Accuracy vs latency</h2>",
        *_accuracy_plots(report),
        "<h2>Latency</h2>",
        *_latency(report),
        *(_note(line) for line in tables.failure_lines(report)),
        *(_quantization(report) if tables.has_quantization(report) else []),
        "<h2>Export parity</h2>",
        _table(tables.parity_table(report)) if report["parity"] else _note("No export checked."),
        "<h2>Stages</h2>",
    ]
    if report["stages"]:
        body += [_table(tables.stage_table(report)), _note(tables.total_seconds_line(report))]
    else:
        body.append(_note("No stage ran."))
    body.append(f"<footer>Written by edgekd {escape(report['edgekd_version'])}.</footer>")
    title = f"edgekd report: {report['pipeline']}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main>\n</body>\n</html>\n"
    )
