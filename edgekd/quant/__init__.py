"""INT8 quantization: BatchNorm folding, the NNCF QAT wrapper, QKD's three phases, ONNX Runtime
post-training quantization (the baseline) and the TensorRT QDQ rule checker.

``nncf`` and ``onnxruntime`` are imported inside the functions that use them.
"""

from edgekd.quant.bn import fold_batchnorm, remaining_batchnorms
from edgekd.quant.errors import QuantizationError
from edgekd.quant.nncf_qat import (
    ensure_nncf_extension,
    export_int8_onnx,
    nncf_extension_path,
    nncf_extension_ready,
    quantize_for_training,
    quantizer_count,
    strip,
)
from edgekd.quant.ptq import ort_static_ptq
from edgekd.quant.qdq_rules import RULES, Violation, check_tensorrt_qdq
from edgekd.quant.qkd import QKDResult, co_study, run_qkd, self_study, tutor

__all__ = [
    "RULES",
    "QKDResult",
    "QuantizationError",
    "Violation",
    "check_tensorrt_qdq",
    "co_study",
    "ensure_nncf_extension",
    "export_int8_onnx",
    "fold_batchnorm",
    "nncf_extension_path",
    "nncf_extension_ready",
    "ort_static_ptq",
    "quantize_for_training",
    "quantizer_count",
    "remaining_batchnorms",
    "run_qkd",
    "self_study",
    "strip",
    "tutor",
]
