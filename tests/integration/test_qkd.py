"""The qkd stage end to end: INT8 models, baselines, the TensorRT QDQ form, the precision choice."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.quant import check_tensorrt_qdq
from tests.conftest import TINY_PIPELINE, write_pipeline

pytestmark = pytest.mark.slow
runner = CliRunner()

QKD = {"calibration_samples": 64, "int8_form": "tensorrt", "self_studying": {"epochs": 1, "lr": 0.01},
       "co_studying": {"epochs": 1, "lr": 0.005}, "tutoring": {"epochs": 1, "lr": 0.005}}


@pytest.fixture
def qkd_pipeline(tmp_path: Path) -> Path:
    data = json.loads(json.dumps(TINY_PIPELINE))
    data["stages"]["distill"]["assistants"] = []
    data["stages"]["distill"]["student"] = {"name": "plain_cnn", "params": {"channels": [8, 16]}}
    data["stages"]["qkd"] = QKD
    data["stages"]["profile"]["batch_sizes"] = [1, 8]
    return write_pipeline(tmp_path, data)


def report_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def test_qkd_makes_deployable_int8_models_with_baselines(qkd_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(qkd_pipeline), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    report = report_of(run_dir)

    for name, method in (("student_int8", "qkd"), ("student_ptq", "ort-ptq"), ("student_qat", "nncf-qat")):
        model = report["models"][name]
        assert model["method"] == method and model["precision"] == "int8"
        assert 0.0 <= model["accuracy"] <= 1.0 and model["size_bytes"] > 0
        assert model["qdq_violations"] == []
    assert report["models"]["student_int8"]["parity"]["top1_agreement"] >= 0.97

    int8_file = run_dir / "student.int8.onnx"
    graph = onnx.load(str(int8_file))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.graph.node}
    assert check_tensorrt_qdq(graph) == []
    assert (run_dir / "student.onnx").is_file()
    assert {p.key for p in graph.metadata_props} == {"edgekd.preprocessing"}  # fed like the FP32 file

    precisions = {(r["model"], r["precision"]) for r in report["latency"]}
    assert ("student_int8", "int8") in precisions and ("student", "fp32") in precisions
    assert [row["batch"] for row in report["precision_choice"]] == [1, 8]
    first = report["precision_choice"][0]
    assert first["fastest"] == ("int8" if first["int8_p50_ms"] < first["fp32_p50_ms"] else "fp32")
    assert report["deployable"]["precision"] in ("fp32", "int8") and report["deployable"]["reason"].startswith("auto")
    assert {c["batch"] for c in report["int8_layers"]} == {1, 8}
    markdown = (run_dir / "report.md").read_text()
    assert "### Quantization" in markdown and "Why INT8 is (not) faster" in markdown

    # Each phase's per-epoch history is recorded as data (it used to be the TrainResult's repr).
    history = json.loads((run_dir / "manifest.json").read_text())["stages"]["qkd"]["outputs"]["history"]
    phases = history["student_int8"]["phases"]
    assert set(phases) == {"self_studying", "co_studying", "tutoring"}
    for epochs in phases.values():
        assert [e["epoch"] for e in epochs] == [1] and 0.0 <= epochs[0]["val_accuracy"] <= 1.0
    assert [e["epoch"] for e in history["student_int8"]["teacher"]] == [1]
    assert len(history["student_qat"]) == 3

    # Forcing the precision changes what is deployed, without retraining anything.
    forced = runner.invoke(app, ["compress", str(qkd_pipeline), "--out", str(run_dir),
                                 "--set", "stages.qkd.precision=int8"])
    assert forced.exit_code == 0, forced.output
    report = report_of(run_dir)
    assert report["deployable"] == {**report["deployable"], "model": "student_int8", "precision": "int8",
                                    "onnx": "student.int8.onnx"}
    assert {s["status"] for s in report["stages"].values()} == {"cached"}


def test_qkd_bad_input_keeps_earlier_stages(qkd_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["compress", str(qkd_pipeline), "--out", str(run_dir),
                               "--set", "stages.qkd.bits=4"]).exit_code == 2
    assert not run_dir.exists()

    def too_many_calibration_samples() -> dict:
        result = runner.invoke(app, ["compress", str(qkd_pipeline), "--out", str(run_dir),
                                     "--set", "stages.qkd.calibration_samples=100000"])
        assert result.exit_code == 2, result.output
        assert "stages.qkd.calibration_samples: 100000 asked" in result.stderr
        assert not list(run_dir.glob(".*.partial"))
        manifest = run_dir / "manifest.json"
        return json.loads(manifest.read_text())["stages"] if manifest.exists() else {}

    assert too_many_calibration_samples() == {}  # found before the teacher trains
    assert runner.invoke(app, ["compress", str(qkd_pipeline), "--out", str(run_dir),
                               "--set", "stages.qkd=null"]).exit_code == 0
    kept = too_many_calibration_samples()  # and before qkd when the earlier stages are cached
    assert {"teacher", "distill"} <= set(kept) and "qkd" not in kept
