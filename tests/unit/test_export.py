"""ONNX export: dynamic batch, parity recorded, and a loud failure past tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgekd.config import ModelSpec
from edgekd.errors import ExportError
from edgekd.export import check_parity, export_onnx
from edgekd.models import build_model


@pytest.fixture
def model_and_file(tmp_path: Path):
    torch.manual_seed(0)
    model = build_model(ModelSpec(name="plain_cnn", params={"channels": [4, 8]}), 10, 1).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, (1, 8, 8), path)
    return model, path


def test_export_has_a_dynamic_batch(model_and_file) -> None:
    _, path = model_and_file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        out = session.run(None, {"input": np.zeros((batch, 1, 8, 8), np.float32)})[0]
        assert out.shape == (batch, 10)


def test_parity_is_measured(model_and_file) -> None:
    model, path = model_and_file
    report = check_parity(model, path, torch.randn(20, 1, 8, 8), atol=1e-4, min_top1_agreement=1.0)
    assert report.samples == 20 and report.top1_agreement == 1.0 and report.max_abs_diff < 1e-4


def test_a_model_that_differs_from_its_export_fails_loudly(model_and_file) -> None:
    model, path = model_and_file
    with torch.no_grad():
        model.head[-1].bias.add_(5.0)  # the ONNX file no longer matches the torch model
    with pytest.raises(ExportError, match="differs from torch"):
        check_parity(model, path, torch.randn(20, 1, 8, 8), atol=1e-3, min_top1_agreement=0.99)
