"""Does a QDQ ONNX graph have the form TensorRT's explicit quantization accepts?

TensorRT builds an INT8 engine from QuantizeLinear/DequantizeLinear nodes as they stand
("explicit quantization", TensorRT developer guide, *Working with Quantized Types*):

- INT8 only: QuantizeLinear outputs and DequantizeLinear inputs are signed 8-bit;
- symmetric: every zero point is 0;
- scales are constant, positive and finite;
- activations are quantized per tensor; weights may be per channel, and then along the
  output-channel axis (axis 0 for Conv weights ``[K, C/g, kh, kw]``, the output axis for
  Gemm/MatMul weights);
- a Conv, Gemm or MatMul runs in INT8 only when every data input comes from a
  DequantizeLinear (possibly through ops TensorRT moves Q/DQ across, such as Reshape or
  MaxPool); otherwise it stays in float, a "float island" that costs reformat time.

:func:`check_tensorrt_qdq` lists each node that breaks a rule, so a user can fix the
export instead of reading a TensorRT build log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx

from edgekd.quant.onnx_graph import attribute, constant_values, producers

RULE_INT8 = "int8"
RULE_ZERO_POINT = "zero-point-0"
RULE_SCALE = "scale"
RULE_WEIGHT_PER_CHANNEL = "weight-per-channel"
RULE_ACTIVATION_PER_TENSOR = "activation-per-tensor"
RULE_FLOAT_ISLAND = "float-island"
RULES = (
    RULE_INT8,
    RULE_ZERO_POINT,
    RULE_SCALE,
    RULE_WEIGHT_PER_CHANNEL,
    RULE_ACTIVATION_PER_TENSOR,
    RULE_FLOAT_ISLAND,
)

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
PASS_THROUGH_OPS = ("Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "MaxPool")
"""Ops that TensorRT moves Q/DQ across: a DequantizeLinear before them still feeds the compute op."""

_INT8 = onnx.TensorProto.INT8


@dataclass(frozen=True)
class Violation:
    node: str
    rule: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.node}: [{self.rule}] {self.message}"


def _name(node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}({node.output[0] if node.output else '?'})"


def check_tensorrt_qdq(model: onnx.ModelProto) -> list[Violation]:
    """Every node of ``model`` that breaks a rule of TensorRT's explicit quantization.

    Args:
        model: A QDQ ONNX model (e.g. from ``export_int8_onnx`` or ``ort_static_ptq``).

    Returns:
        The violations in graph order (empty when TensorRT accepts the graph as is); each
        names the node, the rule (one of :data:`RULES`) and what is wrong.
    """
    graph = model.graph
    consts = constant_values(graph)
    made_by = producers(graph)
    violations: list[Violation] = []
    weight_dq = _weight_dequantizers(graph, consts, made_by)

    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            violations += _check_qdq_node(node, consts, made_by, weight_dq)
        elif node.op_type in COMPUTE_OPS:
            violations += _check_compute_node(node, consts, made_by)
    return violations


def _check_qdq_node(
    node: onnx.NodeProto,
    consts: dict[str, np.ndarray],
    made_by: dict[str, onnx.NodeProto],
    weight_dq: dict[str, tuple[str, int]],
) -> list[Violation]:
    name = _name(node)
    found: list[Violation] = []
    scale_name = node.input[1] if len(node.input) > 1 else ""
    zp_name = node.input[2] if len(node.input) > 2 else ""

    dtype = _quantized_type(node, consts, made_by)
    if dtype != _INT8:
        type_name = onnx.TensorProto.DataType.Name(dtype) if dtype is not None else "unknown"
        hint = "TensorRT needs INT8 (signed 8-bit)"
        if dtype == onnx.TensorProto.INT32:
            hint += "; an INT32 DequantizeLinear is a quantized bias: keep biases in float"
        elif dtype == onnx.TensorProto.UINT8:
            hint += "; quantize activations as signed INT8 with zero point 0"
        found.append(Violation(name, RULE_INT8, f"{node.op_type} uses {type_name}; {hint}"))

    if zp_name:
        zp = consts.get(zp_name)
        if zp is None:
            found.append(Violation(name, RULE_ZERO_POINT, f"zero point {zp_name!r} is not a constant"))
        elif np.any(zp != 0):
            values = np.unique(zp)[:4].tolist()
            found.append(
                Violation(name, RULE_ZERO_POINT, f"zero point is {values} (asymmetric); TensorRT needs 0")
            )

    scale = consts.get(scale_name)
    if scale is None:
        found.append(
            Violation(name, RULE_SCALE, f"scale {scale_name!r} is not a constant; TensorRT needs constant scales")
        )
    elif not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        bad = np.flatnonzero(~np.isfinite(scale.ravel()) | (scale.ravel() <= 0))
        where = f"scale[{bad[0]}]" if scale.ndim else "scale"
        found.append(
            Violation(
                name, RULE_SCALE, f"{where} is {scale.ravel()[bad[0]]:g} ({bad.size} of {scale.size} bad);"
                " scales must be positive and finite"
            )
        )

    if node.op_type == "DequantizeLinear" and scale is not None:
        role = weight_dq.get(node.output[0])
        per_channel = scale.ndim == 1 and scale.size > 1
        axis = attribute(node, "axis", 1)
        if role is None and per_channel and not _is_constant_input(node.input[0], consts, made_by):
            found.append(
                Violation(
                    name,
                    RULE_ACTIVATION_PER_TENSOR,
                    f"activation quantized per channel (axis {axis}); TensorRT needs per-tensor scales for activations",
                )
            )
        if role is not None:
            op_type, expected_axis = role
            x = _constant_source(node.input[0], consts, made_by)
            rank = x.ndim if x is not None else None
            if rank is not None and axis < 0:
                axis += rank
            if op_type == "Conv" and not per_channel:
                message = "Conv weight quantized per tensor; quantize it per channel along axis 0 (output channels)"
                found.append(Violation(name, RULE_WEIGHT_PER_CHANNEL, message))
            elif per_channel and axis != expected_axis:
                message = (
                    f"{op_type} weight quantized per channel along axis {axis};"
                    f" TensorRT needs axis {expected_axis} (output channels)"
                )
                found.append(Violation(name, RULE_WEIGHT_PER_CHANNEL, message))
            elif per_channel and x is not None and 0 <= axis < x.ndim and scale.size != x.shape[axis]:
                message = (f"{scale.size} scales for the {x.shape[axis]} channels of the {op_type} weight's axis"
                           f" {axis}; give one scale per output channel")
                found.append(Violation(name, RULE_WEIGHT_PER_CHANNEL, message))
    return found


def _check_compute_node(
    node: onnx.NodeProto, consts: dict[str, np.ndarray], made_by: dict[str, onnx.NodeProto]
) -> list[Violation]:
    data_inputs = [0, 1]  # Conv: input, weight; Gemm/MatMul: A, B (the bias stays float)
    floats = []
    for index in data_inputs:
        if index >= len(node.input) or not node.input[index]:
            continue
        source = _through_pass_through(node.input[index], made_by)
        producer = made_by.get(source)
        if producer is None or producer.op_type != "DequantizeLinear":
            role = ("input", "weight")[index] if node.op_type == "Conv" else ("A", "B")[index]
            floats.append(f"{role} {node.input[index]!r}")
    if not floats:
        return []
    return [
        Violation(
            _name(node),
            RULE_FLOAT_ISLAND,
            f"{node.op_type} stays in float: {', '.join(floats)} not fed by DequantizeLinear;"
            " quantize this layer or exclude it knowingly",
        )
    ]


def _weight_dequantizers(
    graph: onnx.GraphProto, consts: dict[str, np.ndarray], made_by: dict[str, onnx.NodeProto]
) -> dict[str, tuple[str, int]]:
    """Output of each DequantizeLinear that feeds a compute op's weight → (op type, the
    output-channel axis its per-channel scale must use)."""
    roles: dict[str, tuple[str, int]] = {}
    for node in graph.node:
        if node.op_type not in COMPUTE_OPS or len(node.input) < 2:
            continue
        producer = made_by.get(node.input[1])
        if producer is None or producer.op_type != "DequantizeLinear":
            continue
        if not _is_constant_input(producer.input[0], consts, made_by):
            continue
        if node.op_type == "Conv":
            axis = 0
        elif node.op_type == "Gemm":
            axis = 0 if attribute(node, "transB", 0) else 1
        else:  # MatMul: B is [..., K, N]
            x = _constant_source(producer.input[0], consts, made_by)
            axis = (x.ndim - 1) if x is not None else 1
        roles[producer.output[0]] = (node.op_type, axis)
    return roles


def _quantized_type(
    node: onnx.NodeProto, consts: dict[str, np.ndarray], made_by: dict[str, onnx.NodeProto]
) -> int | None:
    """The integer type a Q node produces or a DQ node reads."""
    if len(node.input) > 2 and node.input[2] in consts:
        return onnx.helper.np_dtype_to_tensor_dtype(consts[node.input[2]].dtype)
    if node.op_type == "QuantizeLinear":
        output_dtype = attribute(node, "output_dtype", 0)
        return output_dtype or onnx.TensorProto.UINT8  # no zero point: uint8 by the ONNX spec
    x = node.input[0]
    if x in consts:
        return onnx.helper.np_dtype_to_tensor_dtype(consts[x].dtype)
    producer = made_by.get(x)
    if producer is not None and producer.op_type == "QuantizeLinear":
        return _quantized_type(producer, consts, made_by)
    return None


def _through_pass_through(value: str, made_by: dict[str, onnx.NodeProto]) -> str:
    seen = set()
    while value not in seen:
        seen.add(value)
        producer = made_by.get(value)
        if producer is None or producer.op_type not in PASS_THROUGH_OPS or not producer.input:
            return value
        value = producer.input[0]
    return value


def _is_constant_input(value: str, consts: dict[str, np.ndarray], made_by: dict[str, onnx.NodeProto]) -> bool:
    return _constant_source(value, consts, made_by) is not None


def _constant_source(
    value: str, consts: dict[str, np.ndarray], made_by: dict[str, onnx.NodeProto]
) -> np.ndarray | None:
    """The constant behind a DQ input: an initializer, or a QuantizeLinear over one."""
    if value in consts:
        return consts[value]
    producer = made_by.get(value)
    if producer is not None and producer.op_type == "QuantizeLinear" and producer.input[0] in consts:
        return consts[producer.input[0]]
    return None
