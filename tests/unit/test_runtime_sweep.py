"""Profiling over several targets: failures are recorded, the other targets still measured, estimates
stand in where a target with a spec could not be measured."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import ConnectionConfig, HardwareSpec, TargetConfig
from edgekd.runtime.sweep import ModelFiles, profile_targets
from tests.unit.test_runtime_onnxruntime import tiny_cnn

SETTINGS = ProfileConfig(warmup_runs=1, min_time_s=0.01, min_runs=3, max_runs=200, layer_profile_runs=0)
SPEC = HardwareSpec(peak_tflops_fp32=0.1, memory_bandwidth_gbs=10.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "tiny.onnx"
    onnx.save(tiny_cnn(), str(path))
    return path


def _unreachable(tmp_path: Path, **extra: object) -> TargetConfig:
    (tmp_path / "empty_ssh_config").write_text("")
    connection = ConnectionConfig(kind="ssh", host="127.0.0.1", port=1, connect_timeout_s=3,
                                  ssh_config=str(tmp_path / "empty_ssh_config"))
    return TargetConfig(name="board", connection=connection, batch_sizes=[1, 2], **extra)


def test_an_unreachable_board_is_recorded_and_estimated(model: Path, tmp_path: Path) -> None:
    local = TargetConfig(name="cpu", threads=1, batch_sizes=[1])
    result = profile_targets([ModelFiles("tiny", onnx=model)], [_unreachable(tmp_path, spec=SPEC), local], SETTINGS)
    assert [(r["target"], r["batch"], r["estimated"]) for r in result.records] == [
        ("board", 1, True), ("board", 2, True), ("cpu", 1, False)]
    assert len(result.failures) == 1  # the first connection failure ends the target
    failure = result.failures[0]
    assert (failure["target"], failure["model"], failure["batch"]) == ("board", None, None)
    assert "target board" in failure["error"] and "Connection refused" in failure["error"]


def test_no_estimate_without_a_spec(model: Path, tmp_path: Path) -> None:
    result = profile_targets([ModelFiles("tiny", onnx=model)], [_unreachable(tmp_path)], SETTINGS)
    assert result.records == [] and len(result.failures) == 1


def test_a_runtime_not_ready_here_fails_the_target_once(model: Path) -> None:
    gpu = TargetConfig(name="gpu", providers=["NoSuchExecutionProvider"], batch_sizes=[1, 4], spec=SPEC)
    result = profile_targets([ModelFiles("tiny", onnx=model)], [gpu], SETTINGS)
    assert [r["estimated"] for r in result.records] == [True, True]
    assert [f["error"].split(":")[0] for f in result.failures] == ["target gpu"]


def test_missing_files_and_precisions_are_failures_of_that_model(model: Path) -> None:
    torch_target = TargetConfig(name="pt", runtime="torch")
    int8_only = TargetConfig(name="int8", precisions=["int8"])
    result = profile_targets([ModelFiles("teacher", onnx=model)], [torch_target, int8_only], SETTINGS)
    assert result.records == []
    assert [(f["target"], f["model"]) for f in result.failures] == [("pt", "teacher"), ("int8", "teacher")]
    assert "no edgekd checkpoint (.pt)" in result.failures[0]["error"]
    assert "stored at fp32" in result.failures[1]["error"]


def test_cli_prints_measured_and_estimated_rows_then_the_failure(model: Path, tmp_path: Path) -> None:
    board = tmp_path / "board.yaml"
    board.write_text(json.dumps(_unreachable(tmp_path, spec=SPEC).model_dump(mode="json")))
    out = tmp_path / "records.json"
    result = CliRunner().invoke(app, ["profile", str(model), "--target", "local-cpu", "--target", str(board),
                                      "--batch", "1", "--min-time", "0.01", "--json", str(out)])
    assert result.exit_code == 2, result.output
    assert "| tiny | board | fp32 | 1 |" in result.stdout and "(estimated)" in result.stdout
    assert "| tiny | local-cpu | fp32 | 1 |" in result.stdout
    assert "not measured: target board" in result.stderr
    records = json.loads(out.read_text())
    assert [(r["target"], r["estimated"]) for r in records] == [("local-cpu", False), ("board", True)]


def test_profile_stage_times_onnx_files_and_checkpoints(model: Path, tmp_path: Path) -> None:
    """The stage hands ONNX Runtime the export folder's files and torch the run folder's checkpoints."""
    import torch

    from edgekd.config import PipelineConfig
    from edgekd.config.pipeline import ModelSpec
    from edgekd.models import build_model, save_checkpoint
    from edgekd.pipeline.stage import RunContext, StageRecord
    from edgekd.stages.profile import ProfileStage
    from tests.conftest import TINY_PIPELINE

    run_dir = tmp_path / "run"
    (run_dir / "export").mkdir(parents=True)
    (run_dir / "export" / "student.onnx").write_bytes(model.read_bytes())
    (run_dir / "export" / "teacher.onnx").write_bytes(model.read_bytes())
    torch.manual_seed(0)
    spec = ModelSpec(name="test_tiny")
    save_checkpoint(run_dir / "distill" / "student.pt", build_model(spec, 10, 1), spec, 10, (1, 8, 8))
    export = StageRecord("export", run_dir / "export", {"models": {
        "teacher": {"onnx": "teacher.onnx", "precision": "fp32"},  # e.g. a TorchScript teacher: no checkpoint
        "student": {"onnx": "student.onnx", "precision": "fp32", "checkpoint": "distill/student.pt"},
    }})
    targets = [TargetConfig(name="cpu", threads=1), TargetConfig(name="pt", runtime="torch", threads=1)]
    ctx = RunContext(config=PipelineConfig.model_validate(TINY_PIPELINE), base_dir=tmp_path, run_dir=run_dir,
                     targets=targets)
    outputs = ProfileStage().run(ctx, tmp_path / "work", {"export": export})
    measured = [(r["target"], r["model"], r["runtime"]) for r in outputs["latency"]]
    assert measured == [("cpu", "teacher", "onnxruntime"), ("cpu", "student", "onnxruntime"),
                        ("pt", "student", "torch")]
    assert [(f["target"], f["model"]) for f in outputs["failures"]] == [("pt", "teacher")]
