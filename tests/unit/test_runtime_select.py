"""Which runtime times a target: SSH boards, the target's runtime, or its first ready fallback."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import ConnectionConfig, TargetConfig
from edgekd.errors import RuntimeBackendError
from edgekd.runtime import get_runtime
from edgekd.runtime.onnxruntime import OnnxRuntime
from edgekd.runtime.select import NoRuntimeReady
from edgekd.runtime.ssh import SshRuntime
from edgekd.runtime.tensorrt import TensorRtRuntime
from edgekd.runtime.torch import TorchRuntime
from tests.unit.test_runtime_onnxruntime import tiny_cnn

NO_GPU_HERE = "a CUDA runtime is ready here"


def _cuda_ready() -> bool:
    return not TorchRuntime(TargetConfig(name="g", runtime="torch", device="cuda")).check()


def test_plain_targets_get_their_runtime_even_when_not_ready() -> None:
    assert isinstance(get_runtime(TargetConfig(name="cpu")), OnnxRuntime)
    assert isinstance(get_runtime(TargetConfig(name="pt", runtime="torch")), TorchRuntime)
    missing = get_runtime(TargetConfig(name="gpu", providers=["NoSuchExecutionProvider"]))
    assert isinstance(missing, OnnxRuntime) and missing.check()


def test_first_ready_fallback_wins() -> None:
    if _cuda_ready():
        pytest.skip(NO_GPU_HERE)
    target = TargetConfig(name="gpu", runtime="torch", device="cuda", fallbacks=["onnxruntime"])
    assert isinstance(get_runtime(target), OnnxRuntime)


def test_no_ready_runtime_lists_every_candidate(tmp_path: Path) -> None:
    target = TargetConfig(name="gpu", runtime="tensorrt", fallbacks=["onnxruntime", "torch"], device="cuda",
                          providers=["NoSuchExecutionProvider"], trtexec="no-such-trtexec")
    runtime = get_runtime(target)
    if not isinstance(runtime, NoRuntimeReady):
        pytest.skip(NO_GPU_HERE)
    problems = runtime.check()
    assert [p.split(":")[0] for p in problems] == ["tensorrt", "onnxruntime"] + (["torch"] if not _cuda_ready() else [])
    findings = runtime.diagnose()
    assert not any(f.ok for f in findings) and "tried tensorrt → onnxruntime → torch" in findings[0].message
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_cnn(), str(path))
    with pytest.raises(RuntimeBackendError, match="cannot run on target 'gpu': tensorrt: TensorRT is not installed"):
        runtime.profile(path, model_name="tiny", batch=1, precision="fp32", settings=ProfileConfig())


def test_ssh_targets_run_their_runtime_on_the_board() -> None:
    board = TargetConfig(name="pi", connection=ConnectionConfig(kind="ssh", host="pi"), runtime="tensorrt",
                         precisions=["fp32", "fp16", "int8"])
    runtime = get_runtime(board)
    assert isinstance(runtime, SshRuntime) and runtime.name == "tensorrt" and runtime.model_format == "onnx"
    assert runtime.precisions_for("fp32") == ["fp32", "fp16"] and runtime.precisions_for("int8") == ["int8"]
    pi = get_runtime(board.model_copy(update={"runtime": "onnxruntime"}))
    assert pi.name == "onnxruntime" and pi.precisions_for("fp32") == ["fp32"]


def test_precisions_each_runtime_can_time() -> None:
    every = ["fp32", "fp16", "int8"]
    assert OnnxRuntime(TargetConfig(name="c", precisions=every)).precisions_for("int8") == ["int8"]
    assert OnnxRuntime(TargetConfig(name="c", precisions=["fp32"])).precisions_for("int8") == []
    assert TensorRtRuntime(TargetConfig(name="g", precisions=every)).precisions_for("fp32") == ["fp32", "fp16"]
    assert TorchRuntime(TargetConfig(name="g", precisions=every, device="cuda")).precisions_for("fp32") == [
        "fp32", "fp16"]
    assert TorchRuntime(TargetConfig(name="c", precisions=every)).precisions_for("fp32") == ["fp32"]
    assert TorchRuntime.model_format == "checkpoint" and OnnxRuntime.model_format == "onnx"
