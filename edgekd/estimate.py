"""Roofline latency estimates from an ONNX graph and a target's hardware spec.

Used only where nothing could be measured; every estimate is a record with
``estimated=True`` and ``runs=0``.

- MACs: ``Conv`` (output elements × input channels per group × kernel size),
  ``ConvTranspose`` (input elements × output channels per group × kernel size),
  ``Gemm`` (M × N × K) and ``MatMul`` (output elements × K), with shapes from
  :func:`onnx.shape_inference.infer_shapes` at the given batch size. Other operators
  count no MACs.
- Bytes: the weights (initializer elements of float or 8-bit types) plus, per node, its
  activation inputs and outputs (each node reads its inputs from memory and writes its
  outputs: no fusion is assumed), all at the element size of the precision. Tensors made
  from initializers alone (``DequantizeLinear`` of weights, ``Constant``) count as weights,
  and integer shape tensors are left out.
- Latency: ``max(2 × MACs / peak ops, bytes / bandwidth)`` for the precision's peak
  (``peak_tops_int8``, ``peak_tflops_fp16`` or ``peak_tflops_fp32``); without a bandwidth,
  the compute term alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from edgekd.config.target import HardwareSpec, TargetConfig
from edgekd.errors import RuntimeBackendError
from edgekd.onnx_model import input_spec, load_onnx
from edgekd.runtime.base import LatencyRecord

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}
METHOD = "roofline estimate: max(2 × MACs / peak, bytes / bandwidth) from the target's spec"
_QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                  "MatMulInteger"}
_COUNTED_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE,
                  TensorProto.INT8, TensorProto.UINT8}
_MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


@dataclass(frozen=True)
class GraphCost:
    """Work and memory traffic of one inference.

    Attributes:
        macs: Multiply-accumulates.
        weight_elements: Elements of the weights, read once.
        activation_elements: Activation elements read and written, summed over nodes.
    """

    macs: int
    weight_elements: int
    activation_elements: int

    def bytes(self, precision: str) -> int:
        """Bytes moved when every element takes the precision's size."""
        return (self.weight_elements + self.activation_elements) * BYTES_PER_ELEMENT[precision]


def model_precision(model: onnx.ModelProto) -> str:
    """The precision a model file stores: ``int8`` with quantize/dequantize (or integer) ops,
    ``fp16`` with a half-precision input, else ``fp32``."""
    if any(node.op_type in _QUANTIZED_OPS for node in model.graph.node):
        return "int8"
    _, _, dtype = input_spec(model)
    return "fp16" if dtype.itemsize == 2 else "fp32"


def graph_cost(model: onnx.ModelProto, batch: int) -> GraphCost:
    """MACs and traffic of one inference of ``model`` at ``batch`` (see the module docstring).

    Args:
        model: A loaded ONNX model with one input whose first dimension is the batch.
        batch: The batch size to infer shapes at.

    Returns:
        The cost.

    Raises:
        RuntimeBackendError: If a MAC-counting node's shapes cannot be inferred.
    """
    inferred = onnx.shape_inference.infer_shapes(_with_batch(model, batch))
    graph = inferred.graph
    shapes, types = _tensor_shapes(inferred)
    initializers = {init.name: init for init in graph.initializer}
    constant = set(initializers)
    for node in graph.node:
        if all(name in constant for name in node.input if name):
            constant.update(node.output)
    macs = 0
    activations = 0
    for node in graph.node:
        if node.op_type in _MAC_OPS:
            macs += _node_macs(node, shapes)
        for name in (*node.input, *node.output):
            if name and name not in constant and types.get(name) in _COUNTED_TYPES and name in shapes:
                activations += math.prod(shapes[name])
    weights = sum(math.prod(init.dims) for init in graph.initializer if init.data_type in _COUNTED_TYPES)
    return GraphCost(macs=macs, weight_elements=weights, activation_elements=activations)


def roofline_ms(cost: GraphCost, precision: str, spec: HardwareSpec) -> float | None:
    """Roofline latency in milliseconds, or ``None`` when the spec has no peak for ``precision``."""
    peak = {"int8": spec.peak_tops_int8, "fp16": spec.peak_tflops_fp16, "fp32": spec.peak_tflops_fp32}[precision]
    if peak is None:
        return None
    seconds = 2 * cost.macs / (peak * 1e12)
    if spec.memory_bandwidth_gbs is not None:
        seconds = max(seconds, cost.bytes(precision) / (spec.memory_bandwidth_gbs * 1e9))
    return seconds * 1000.0


def estimate_record(
    model_path: Path, *, model_name: str, target: TargetConfig, batch: int, precision: str
) -> LatencyRecord:
    """An estimated latency record of an ONNX model on a target that was not measured.

    Args:
        model_path: The ``.onnx`` file.
        model_name: Name shown in reports.
        target: A target with a ``spec``.
        batch: Batch size.
        precision: ``fp32``, ``fp16`` or ``int8``.

    Returns:
        A record with ``estimated=True``, ``runs=0`` and every percentile equal to the estimate.

    Raises:
        RuntimeBackendError: If the target has no spec or no peak for ``precision``, or the
            model's shapes cannot be inferred.
    """
    if target.spec is None:
        raise RuntimeBackendError(f"target {target.name} has no spec; add one to estimate its latency")
    ms = roofline_ms(graph_cost(load_onnx(model_path), batch), precision, target.spec)
    if ms is None or ms <= 0:
        raise RuntimeBackendError(
            f"target {target.name}'s spec has no {precision} peak; add it to estimate {precision} latency"
        )
    return LatencyRecord(
        model=model_name, target=target.name, runtime=target.runtime, precision=precision, batch=batch,
        p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms, std_ms=0.0, throughput=batch * 1000.0 / ms, runs=0,
        outliers=0, estimated=True, threads=None, runtime_version="", provider="roofline", method=METHOD,
    )


def _with_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    initializers = {init.name for init in copy.graph.initializer}
    for value in copy.graph.input:
        if value.name not in initializers:
            dims = value.type.tensor_type.shape.dim
            if dims:
                dims[0].Clear()
                dims[0].dim_value = batch
    return copy


def _tensor_shapes(model: onnx.ModelProto) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """Static shapes and element types of every tensor whose shape inference fully resolved."""
    shapes: dict[str, tuple[int, ...]] = {}
    types: dict[str, int] = {}
    graph = model.graph
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor = value.type.tensor_type
        types[value.name] = tensor.elem_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        if tensor.HasField("shape") and all(d > 0 for d in dims):
            shapes[value.name] = dims
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
        types[init.name] = init.data_type
    return shapes, types


def _node_macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    needed = [node.input[0], node.input[1], node.output[0]]
    if any(name not in shapes for name in needed):
        raise RuntimeBackendError(
            f"cannot infer the shapes of {node.op_type} node {node.name or node.output[0]!r};"
            " re-export the model with static shapes (except the batch axis) to estimate it"
        )
    a, b, out = (shapes[name] for name in needed)
    if node.op_type == "Conv":
        return math.prod(out) * math.prod(b[1:])
    if node.op_type == "ConvTranspose":
        return math.prod(a) * math.prod(b[1:])
    if node.op_type == "Gemm":
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return math.prod(out) * (a[0] if trans_a else a[1])
    return math.prod(out) * a[-1]  # MatMul
