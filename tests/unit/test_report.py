"""The report: budgets, Markdown, HTML (self-contained, escaped, with plots) and the written files."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from edgekd.config.pipeline import BudgetsConfig
from edgekd.report import (
    budgets_met,
    evaluate_budgets,
    render_html,
    render_latency_markdown,
    render_markdown,
    write_report,
)
from edgekd.report.plots import accuracy_vs_latency_svg, layer_times_svg


def _model(role: str, family: str, accuracy: float, params: int, macs: int) -> dict[str, Any]:
    return {"role": role, "family": family, "accuracy": accuracy, "params": params, "macs": macs,
            "size_bytes": 4 * params + 20_000}


def _latency(model: str, target: str, p50: float, *, batch: int = 1, precision: str = "fp32",
             estimated: bool = False, layers: bool = False) -> dict[str, Any]:
    record = {
        "model": model, "target": target, "runtime": "onnxruntime", "precision": precision,
        "batch": batch, "p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.4,
        "mean_ms": p50 * 1.02, "std_ms": p50 * 0.05, "throughput": 1000 * batch / p50,
        "runs": 0 if estimated else 812, "outliers": 0 if estimated else 3, "estimated": estimated,
        "threads": 2, "runtime_version": "1.32.0", "provider": "CPUExecutionProvider", "layers": [],
    }
    if layers:
        record["layers"] = [
            {"name": "/layer1/layer1.0/conv1/Conv", "op_type": "Conv", "mean_ms": 0.4 * p50, "share": 0.4},
            {"name": "/layer2/layer2.0/conv1/Conv", "op_type": "Conv", "mean_ms": 0.25 * p50, "share": 0.25},
            {"name": "/fc/Gemm", "op_type": "Gemm", "mean_ms": 0.05 * p50, "share": 0.05},
        ]
    return record


@pytest.fixture
def report() -> dict[str, Any]:
    return {
        "edgekd_version": "0.1.0",
        "pipeline": "quickstart",
        "created": "2026-11-23T14:00:00+00:00",
        "run_dir": "runs/quickstart",
        "deployable": {"model": "student", "onnx": "student.onnx", "precision": "fp32"},
        "models": {
            "teacher": _model("teacher", "resnet_cifar", 0.981, 272_474, 10_000_000),
            "assistant_1": _model("assistant", "resnet_cifar", 0.972, 78_042, 2_900_000),
            "student": _model("student", "plain_cnn", 0.958, 12_810, 410_000),
            "student_no_kd": _model("baseline", "plain_cnn", 0.937, 12_810, 410_000),
        },
        "latency": [
            _latency("student", "local-cpu", 0.95, batch=8, layers=True),
            _latency("teacher", "local-cpu", 1.84),
            _latency("assistant_1", "local-cpu", 0.71),
            _latency("student", "local-cpu", 0.21, layers=True),
            _latency("student_no_kd", "local-cpu", 0.22),
            _latency("teacher", "raspberry-pi-5", 9.6, estimated=True),
            _latency("student", "raspberry-pi-5", 0.8, estimated=True),
        ],
        "parity": {"student": {"max_abs_diff": 1.2e-6, "top1_agreement": 1.0, "samples": 360}},
        "budgets": [
            {"name": "min_accuracy", "limit": 0.9, "value": 0.958, "ok": True},
            {"name": "max_latency_p50_ms@local-cpu", "limit": 5.0, "value": 0.21, "ok": True},
        ],
        "stages": {
            "teacher": {"status": "done", "seconds": 20.1},
            "distill": {"status": "cached", "seconds": 0.0},
            "export": {"status": "done", "seconds": 3.2},
            "profile": {"status": "done", "seconds": 11.7},
        },
    }


# --- budgets -------------------------------------------------------------------------------


def test_budgets_pass(report):
    budgets = BudgetsConfig(min_accuracy=0.9, max_size_bytes=1_000_000,
                            max_latency_p50_ms={"local-cpu": 5.0})
    results = evaluate_budgets(budgets, report)
    assert [r["name"] for r in results] == [
        "min_accuracy", "max_size_bytes", "max_latency_p50_ms@local-cpu"
    ]
    assert [r["value"] for r in results] == [0.958, 4 * 12_810 + 20_000, 0.21]
    assert all(r["ok"] for r in results)
    assert budgets_met(results)


def test_budgets_fail(report):
    budgets = BudgetsConfig(min_accuracy=0.99, max_size_bytes=1000, max_latency_p50_ms={"local-cpu": 0.1})
    results = evaluate_budgets(budgets, report)
    assert [r["ok"] for r in results] == [False, False, False]
    assert not budgets_met(results)


def test_budget_without_a_record_is_missed(report):
    budgets = BudgetsConfig(max_latency_p50_ms={"local-cpu": 5.0, "jetson-orin-nano": 5.0})
    results = evaluate_budgets(budgets, report)
    assert results[1] == {"name": "max_latency_p50_ms@jetson-orin-nano", "limit": 5.0,
                          "value": None, "ok": False}
    report["deployable"]["model"] = "missing"
    (accuracy,) = evaluate_budgets(BudgetsConfig(min_accuracy=0.5), report)
    assert accuracy["value"] is None and not accuracy["ok"]


def test_latency_budget_uses_smallest_batch_of_deployable_precision(report):
    report["latency"] = [
        _latency("student", "local-cpu", 3.0, batch=8),
        _latency("student", "local-cpu", 0.02, batch=1, precision="int8"),
        _latency("student", "local-cpu", 0.9, batch=2),
        _latency("student", "local-cpu", 0.4, batch=4),
    ]
    (result,) = evaluate_budgets(BudgetsConfig(max_latency_p50_ms={"local-cpu": 0.5}), report)
    assert result["value"] == 0.9 and not result["ok"]


def test_no_budgets_are_met():
    assert budgets_met([])


# --- markdown ------------------------------------------------------------------------------


def test_markdown_sections(report):
    text = render_markdown(report)
    assert text.splitlines()[0].startswith("## ✅ all 2 budgets met")
    for name in report["models"]:
        assert f"| {name}" in text
    assert "| student (deployable) | student | plain_cnn | 95.80% | 12.8k | 410k |" in text
    for budget in report["budgets"]:
        assert f"| {budget['name']} |" in text
    rows = [line for line in text.splitlines() if "onnxruntime" not in line and "| fp32 |" in line]
    assert len(rows) == len(report["latency"])
    assert "| student | local-cpu | fp32 | 8 | 0.950 |" in text
    assert "| student | raspberry-pi-5 | fp32 | 1 | 0.800 (estimated) |" in text
    assert "KD gain: +2.10 points" in text
    assert "Top layers: student on local-cpu (fp32, batch 1)" in text
    assert "Top layers: teacher" not in text  # only the deployable model's layers
    assert "| /layer1/layer1.0/conv1/Conv | Conv | 0.0840 | 40.0% |" in text
    assert "| student | 1.20e-06 | 100.00% | 360 |" in text
    assert "| distill | cached | 0.0 |" in text and "Total: 35.0 s" in text


def test_markdown_verdict_when_a_budget_is_missed(report):
    report["budgets"][1].update(value=None, ok=False)
    text = render_markdown(report)
    assert text.splitlines()[0].startswith("## ❌ 1 of 2 budgets missed")
    assert "| max_latency_p50_ms@local-cpu | ≤ 5.00 ms | not measured | ❌ missed |" in text


def test_latency_markdown_alone(report):
    text = render_latency_markdown(report["latency"])
    assert text.startswith("| Model | Target | Precision | Batch | p50 ms |")
    assert "Top layers: student on local-cpu (fp32, batch 1)" in text
    assert "local-cpu: onnxruntime 1.32.0, CPUExecutionProvider, 2 threads" in text
    assert render_latency_markdown([]) == "_No latency measured._\n"


# --- html ----------------------------------------------------------------------------------


def test_html_is_self_contained(report):
    page = render_html(report)
    assert page.count("<svg") == 3  # accuracy on two targets, the deployable's layers on one
    lowered = page.lower()
    for external in ("<script", "<link", "<img", "<iframe", "src=", "@import", "url(http"):
        assert external not in lowered
    urls = re.findall(r"https?://[^\s\"')]+", page)
    assert set(urls) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert page.count('xmlns="http://www.w3.org/2000/svg"') == page.count("<svg")


def test_html_plot_ids_are_unique(report):
    page = render_html(report)
    referenced = set(re.findall(r'(?:href="#|url\(#)([\w-]+)', page))
    assert referenced
    for ident in referenced:
        assert page.count(f'id="{ident}"') == 1, ident


def test_html_escapes_report_strings(report):
    report["models"]["<b>x</b>"] = report["models"].pop("assistant_1")
    for record in report["latency"]:
        if record["model"] == "assistant_1":
            record["model"] = "<b>x</b>"
    report["pipeline"] = 'a&b"<i>'
    page = render_html(report)
    assert "<b>x</b>" not in page and "<i>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in render_markdown(report)


def test_empty_latency_still_renders(report):
    report["latency"] = []
    page = render_html(report)
    assert "<svg" not in page
    assert "No latency measured" in page
    assert "No latency measured" in render_markdown(report)


# --- plots ---------------------------------------------------------------------------------


def test_accuracy_vs_latency_plot(report):
    svg = accuracy_vs_latency_svg(report, "local-cpu")
    assert svg.startswith("<svg")
    for name in report["models"]:
        assert name in svg
    assert "max p50 5 ms" in svg and "min accuracy 90%" in svg
    assert accuracy_vs_latency_svg(report, "unknown-target") == ""


def test_layer_times_plot(report):
    record = report["latency"][3]
    svg = layer_times_svg(record)
    assert svg.startswith("<svg") and "/fc/Gemm (Gemm)" in svg
    assert layer_times_svg(report["latency"][1]) == ""


# --- files ---------------------------------------------------------------------------------


def test_write_report(report, tmp_path):
    run_dir = tmp_path / "runs" / "quickstart"
    write_report(report, run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.html", "report.json", "report.md"]
    assert json.loads((run_dir / "report.json").read_text()) == report
    assert (run_dir / "report.md").read_text(encoding="utf-8").startswith("## ✅")
    assert "<svg" in (run_dir / "report.html").read_text(encoding="utf-8")


def test_tensorrt_qdq_line_names_what_breaks_and_how_to_get_a_tensorrt_file(report) -> None:
    from edgekd.report.tables import tensorrt_qdq_summary

    assert tensorrt_qdq_summary(report) == ""  # no INT8 model, no line
    uint8 = {"node": "/stem/Q", "rule": "int8", "message": "QuantizeLinear uses UINT8"}
    report["models"]["student_int8"] = {**_model("quantized", "plain_cnn", 0.95, 12_810, 410_000), "precision": "int8",
                                        "int8_form": "onnxruntime", "qdq_violations": [uint8, uint8]}
    report["models"]["student_ptq"] = {**_model("quantized-baseline", "plain_cnn", 0.95, 12_810, 410_000),
                                       "precision": "int8", "int8_form": "tensorrt", "qdq_violations": []}
    line = tensorrt_qdq_summary(report)
    assert "student_int8 breaks 2 (first: /stem/Q: QuantizeLinear uses UINT8)" in line
    assert "student_ptq passes" in line and "stages.qkd.int8_form: tensorrt" in line
    assert line in render_markdown({**report, "deployable": {**report["deployable"], "reason": "auto"}})


def test_int8_layer_summary_warns_when_profiled_layers_outweigh_the_p50() -> None:
    from edgekd.report.tables import int8_layer_summary

    comparison = {"rows": [{"int8_ms": 0.03}], "qdq_ms": 0.01, "layout_ms": 0.005, "int8_p50_ms": 0.02,
                  "slower": [], "float_layers": []}
    assert "add up to 0.0450 ms against a p50 of 0.0200 ms" in int8_layer_summary(comparison)
    assert "add up to" not in int8_layer_summary({**comparison, "int8_p50_ms": 0.05})


def test_layer_section_notes_when_profiled_layers_outweigh_the_p50() -> None:
    from edgekd.report.tables import layer_sections

    quiet = _latency("student", "local-cpu", 0.2, layers=True)  # layers: 70% of the p50
    (section,) = layer_sections([quiet])
    assert section.note == ""
    loud = {**quiet, "layers": [{**layer, "mean_ms": 3 * layer["mean_ms"]} for layer in quiet["layers"]]}
    (section,) = layer_sections([loud])
    assert "add up to 0.420 ms against a p50 of 0.200 ms" in section.note
    assert section.note in render_latency_markdown([loud])


def test_size_budget_shows_the_exact_bytes_beside_the_binary_unit() -> None:
    from edgekd.report.tables import fmt_budget

    assert fmt_budget("max_size_bytes", 1_000_000) == "977 KiB (1,000,000 B)"
    assert fmt_budget("max_size_bytes", 512) == "512 B"
