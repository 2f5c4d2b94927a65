"""The run report: budgets that decide the exit code, and its JSON, Markdown and HTML forms."""

from edgekd.report.budgets import budgets_met, evaluate_budgets
from edgekd.report.html import render_html
from edgekd.report.markdown import render_latency_markdown, render_markdown
from edgekd.report.write import write_report

__all__ = [
    "budgets_met",
    "evaluate_budgets",
    "render_html",
    "render_latency_markdown",
    "render_markdown",
    "write_report",
]
