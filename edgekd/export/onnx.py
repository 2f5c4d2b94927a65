"""ONNX export (dynamic batch) and the parity check against torch with ONNX Runtime.

We use torch's TorchScript-based exporter (``dynamo=False``): it is ~50× faster than the
dynamo exporter on these CNNs and it is the one NNCF's fake-quantize modules export through
(docs/design-notes.md, "Quantization"), so FP32 and INT8 files come from the same code path.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.errors import ExportError
from edgekd.fsutil import atomic_write_with

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def torch_to_onnx(model: nn.Module, input_shape: tuple[int, int, int], path: Path, opset: int = 17) -> None:
    """``torch.onnx.export`` with edgekd's input/output names and a dynamic batch (not atomic)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, *input_shape),),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )


def export_onnx(model: nn.Module, input_shape: tuple[int, int, int], path: Path, opset: int = 17) -> None:
    """Write ``model`` as ONNX with a dynamic batch dimension, atomically."""
    try:
        atomic_write_with(path, lambda tmp: torch_to_onnx(model, input_shape, tmp, opset))
    except Exception as exc:  # torch raises many kinds; the user needs one line
        raise ExportError(f"ONNX export of {path.stem} failed: {str(exc).splitlines()[0]}") from exc


PREPROCESSING_KEY = "edgekd.preprocessing"
"""The ONNX metadata key (``metadata_props``) that holds the input preparation, as JSON."""


def write_preprocessing(path: Path, spec: dict, source: Path | None = None) -> None:
    """Store ``spec`` (:func:`edgekd.data.preprocessing`) in the ONNX file's metadata, atomically;
    with ``source``, ``path`` becomes a copy of that file with the metadata added. ONNX Runtime
    reads it back with ``session.get_modelmeta().custom_metadata_map``."""
    import json

    import onnx

    model = onnx.load(str(source or path))
    onnx.helper.set_model_props(model, {PREPROCESSING_KEY: json.dumps(spec, ensure_ascii=False)})
    atomic_write_with(path, lambda tmp: onnx.save(model, str(tmp)))


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float
    top1_agreement: float
    samples: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def measure_parity(model: nn.Module, onnx_path: Path, inputs: torch.Tensor, batch_size: int = 256) -> ParityReport:
    """Run ``inputs`` through torch and ONNX Runtime (CPU): the largest logit difference and how
    often the two agree on the top-1 class."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model = model.eval()
    max_diff, agree = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            expected = model(chunk).numpy()
            got = session.run(None, {INPUT_NAME: chunk.numpy().astype(np.float32)})[0]
            max_diff = max(max_diff, float(np.abs(expected - got).max()))
            agree += int((expected.argmax(1) == got.argmax(1)).sum())
    return ParityReport(max_abs_diff=max_diff, top1_agreement=agree / max(len(inputs), 1), samples=len(inputs))


def check_parity(
    model: nn.Module,
    onnx_path: Path,
    inputs: torch.Tensor,
    *,
    atol: float,
    min_top1_agreement: float,
    batch_size: int = 256,
) -> ParityReport:
    """:func:`measure_parity`, raising ExportError past tolerance."""
    report = measure_parity(model, onnx_path, inputs, batch_size)
    if report.max_abs_diff > atol or report.top1_agreement < min_top1_agreement:
        raise ExportError(
            f"{onnx_path.name} differs from torch: max |diff| {report.max_abs_diff:.2e} (allowed {atol:.0e}),"
            f" top-1 agreement {report.top1_agreement:.2%} (needed {min_top1_agreement:.0%});"
            " the export is not trustworthy: check for ops that behave differently in eval mode"
        )
    return report


def onnx_accuracy(onnx_path: Path, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of an ONNX model under ONNX Runtime (CPU): the number the deployed file earns."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    correct = 0
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size].numpy().astype(np.float32)
        predicted = session.run(None, {INPUT_NAME: chunk})[0].argmax(1)
        correct += int((predicted == labels[start : start + batch_size].numpy()).sum())
    return correct / max(len(inputs), 1)
