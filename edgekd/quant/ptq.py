"""The post-training baseline: ONNX Runtime static quantization of the FP32 ONNX file.

QDQ format, INT8 weights (per channel) and activations, symmetric: the same TensorRT form as
the QAT/QKD export, so the report compares like with like. ``onnxruntime`` is imported inside
the function.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgekd.errors import ExportError
from edgekd.fsutil import atomic_write_with
from edgekd.quant.errors import QuantizationError


def ort_static_ptq(
    fp32_onnx: Path,
    out: Path,
    calib: np.ndarray,
    *,
    batch_size: int = 32,
    input_name: str | None = None,
) -> None:
    """Quantize an FP32 ONNX model with ``onnxruntime.quantization.quantize_static`` and
    write it to ``out`` atomically.

    QDQ format; weights QInt8, symmetric, per channel; activations QInt8, symmetric
    (``ActivationSymmetric``), biases left in float (``QuantizeBias`` off: TensorRT rejects
    INT32 bias DequantizeLinear), MinMax calibration over ``calib``: zero point 0 everywhere,
    which :func:`edgekd.quant.qdq_rules.check_tensorrt_qdq` accepts. ONNX Runtime's model
    pre-processing (shape inference and graph optimization) runs first, as its docs advise.

    Args:
        fp32_onnx: The FP32 model (dynamic batch).
        out: Where to write the INT8 QDQ model.
        calib: ``[N, C, H, W]`` calibration inputs, normalized like the training data.
        batch_size: Calibration batch size.
        input_name: The model input; default: its only input.

    Raises:
        QuantizationError: ``calib`` is empty.
        ExportError: ONNX Runtime's quantizer failed.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calib = np.asarray(calib, dtype=np.float32)
    if calib.ndim < 2 or len(calib) == 0:
        raise QuantizationError("PTQ needs at least one calibration sample; give a non-empty calibration set")
    if input_name is None:
        graph_inputs = [i.name for i in onnx.load(str(fp32_onnx), load_external_data=False).graph.input]
        input_name = graph_inputs[0]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([calib[i : i + batch_size] for i in range(0, len(calib), batch_size)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="edgekd-ptq-") as work:
            prepared = Path(work) / "prepared.onnx"
            quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(tmp),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={
                    "ActivationSymmetric": True,
                    "WeightSymmetric": True,
                    # an INT32 bias behind a DequantizeLinear fails TensorRT's ONNX parser
                    # (onnx/onnx-tensorrt#850, microsoft/onnxruntime#17738): keep biases float
                    "QuantizeBias": False,
                },
            )

    try:
        atomic_write_with(Path(out), write)
    except Exception as exc:  # onnxruntime raises many kinds; the user needs one line
        raise ExportError(
            f"ONNX Runtime post-training quantization of {Path(fp32_onnx).name} failed:"
            f" {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
