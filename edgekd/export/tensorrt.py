"""TensorRT engine from an edgekd ONNX file (TensorRT ≥ 10 Python API).

TensorRT cannot be installed on our CPU build machines; this code runs where it is importable
(``pip install 'edgekd[tensorrt]'`` on an NVIDIA machine) and its tests skip elsewhere.
An ONNX file with QuantizeLinear/DequantizeLinear nodes builds as explicit INT8.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgekd.errors import ExportError
from edgekd.fsutil import atomic_write_bytes


def _tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise ExportError(
            "TensorRT is not installed: on an NVIDIA machine run pip install 'edgekd[tensorrt]'"
        ) from None
    return trt


def build_engine(onnx_path: Path, engine_path: Path, *, batch: int = 1, max_batch: int | None = None,
                 fp16: bool = True, workspace_mib: int = 1024) -> Path:
    """Parse ``onnx_path`` and write a serialized engine whose batch range is 1…``max_batch``."""
    trt = _tensorrt()
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)  # edgekd --debug
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if any(network.get_layer(i).type == trt.LayerType.QUANTIZE for i in range(network.num_layers)):
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    top = max(batch, max_batch or batch)
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (batch, *rest), (top, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path}; run with --debug for TensorRT's verbose log")
    atomic_write_bytes(engine_path, bytes(serialized))
    return engine_path
