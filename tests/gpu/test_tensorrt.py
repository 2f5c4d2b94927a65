"""TensorRT engine build: runs only where TensorRT is importable (an NVIDIA machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

trt = pytest.importorskip("tensorrt")


def test_engine_builds_from_an_edgekd_onnx(tmp_path: Path) -> None:
    from edgekd.config import ModelSpec
    from edgekd.export import export_onnx
    from edgekd.export.tensorrt import build_engine
    from edgekd.models import build_model

    onnx_path = tmp_path / "m.onnx"
    export_onnx(build_model(ModelSpec(name="test_tiny"), 10, 1), (1, 8, 8), onnx_path)
    engine = build_engine(onnx_path, tmp_path / "m.engine", batch=1, max_batch=8)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    assert runtime.deserialize_cuda_engine(engine.read_bytes()) is not None
