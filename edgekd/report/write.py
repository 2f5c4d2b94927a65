"""Write a run's report files: report.json, report.md and report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.fsutil import atomic_write_json, atomic_write_text
from edgekd.report.html import render_html
from edgekd.report.markdown import render_markdown


def write_report(report: dict[str, Any], run_dir: Path) -> None:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``run_dir``, each atomically.

    Args:
        report: The report dict, as :func:`edgekd.pipeline.report_data.build_report` makes it.
        run_dir: The run folder; created if missing.
    """
    run_dir = Path(run_dir)
    atomic_write_json(run_dir / "report.json", report)
    atomic_write_text(run_dir / "report.md", render_markdown(report))
    atomic_write_text(run_dir / "report.html", render_html(report))
