"""GPU runtimes (torch CUDA, ONNX Runtime CUDA, TensorRT): run only where a CUDA device is visible."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from edgekd.config.pipeline import ModelSpec, ProfileConfig
from edgekd.config.target import TargetConfig
from edgekd.runtime import get_runtime
from edgekd.runtime.onnxruntime import OnnxRuntime
from edgekd.runtime.tensorrt import TensorRtRuntime
from edgekd.runtime.torch import CUDA_GRAPH_MAX_BATCH, TorchRuntime
from edgekd.targets import load_target

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
SETTINGS = ProfileConfig(warmup_runs=5, min_time_s=0.2, min_runs=20, max_runs=10_000, layer_profile_runs=5)
CUDA = TargetConfig(name="cuda", runtime="torch", device="cuda", precisions=["fp32", "fp16", "int8"],
                    providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The quickstart student's architecture (plain_cnn 16/32 on 1×8×8 digits) as checkpoint and ONNX."""
    from edgekd.export import export_onnx
    from edgekd.models import build_model, save_checkpoint

    folder = tmp_path_factory.mktemp("cuda")
    spec = ModelSpec(name="plain_cnn", params={"channels": [16, 32]})
    torch.manual_seed(0)
    module = build_model(spec, 10, 1)
    save_checkpoint(folder / "student.pt", module, spec, 10, (1, 8, 8))
    export_onnx(module.eval(), (1, 8, 8), folder / "student.onnx")
    return folder / "student.pt", folder / "student.onnx"


@pytest.mark.parametrize("batch, mode", [(1, "CUDA graph"), (64, "eager")])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_cuda_times_copies_apart_from_compute(files: tuple[Path, Path], batch: int, mode: str,
                                                   precision: str) -> None:
    assert (batch <= CUDA_GRAPH_MAX_BATCH) == (mode == "CUDA graph")
    record = TorchRuntime(CUDA).profile(files[0], model_name="student", batch=batch, precision=precision,
                                        settings=SETTINGS)
    assert mode in record.provider and "CUDA events" in record.method
    assert min(record.h2d_ms, record.compute_ms, record.d2h_ms) > 0
    assert record.h2d_ms + record.compute_ms + record.d2h_ms == pytest.approx(record.p50_ms, rel=0.5)
    print(f"torch CUDA {precision} b{batch}: p50 {record.p50_ms:.4f} ms (h2d {record.h2d_ms:.4f}, compute"
          f" {record.compute_ms:.4f}, d2h {record.d2h_ms:.4f}) on {record.provider}")


def test_onnxruntime_cuda_provider(files: tuple[Path, Path]) -> None:
    runtime = OnnxRuntime(CUDA.model_copy(update={"runtime": "onnxruntime"}))
    if runtime.check():
        pytest.skip(runtime.check()[0])
    record = runtime.profile(files[1], model_name="student", batch=1, precision="fp32", settings=SETTINGS)
    assert record.provider == "CUDAExecutionProvider"


def test_local_cuda_picks_a_ready_runtime(files: tuple[Path, Path]) -> None:
    runtime = get_runtime(load_target("local-cuda"))
    assert runtime.check() == [], runtime.check()
    path = files[1] if runtime.model_format == "onnx" else files[0]
    record = runtime.profile(path, model_name="student", batch=1, precision="fp32", settings=SETTINGS)
    print(f"local-cuda chose {runtime.name}: {runtime.describe()}; p50 {record.p50_ms:.4f} ms")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt(files: tuple[Path, Path], precision: str) -> None:
    runtime = TensorRtRuntime(CUDA.model_copy(update={"runtime": "tensorrt"}))
    if runtime.check():
        pytest.skip(runtime.check()[0])
    record = runtime.profile(files[1], model_name="student", batch=8, precision=precision, settings=SETTINGS)
    assert record.runtime == "tensorrt" and record.compute_ms is not None and record.layers
    via = "trtexec" if shutil.which(CUDA.trtexec) else "Python API"
    print(f"TensorRT ({via}) {precision} b8: p50 {record.p50_ms:.4f} ms, {record.runtime_version}")
