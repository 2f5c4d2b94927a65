"""Roofline estimates: MACs and bytes of small graphs against hand computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekd.config.target import HardwareSpec, TargetConfig
from edgekd.errors import RuntimeBackendError
from edgekd.estimate import GraphCost, estimate_record, graph_cost, model_precision, roofline_ms
from tests.unit.test_runtime_onnxruntime import tiny_cnn

# tiny_cnn at batch 1 (Conv 3→8 3×3 pad 1 on 8×8, Relu, GlobalAveragePool, Flatten, Gemm 8→4):
#   MACs: conv 8·8·8 outputs × 3·3·3 = 13824, gemm 4 outputs × 8 = 32 → 13856
#   weights: conv_w 216 + conv_b 8 + fc_w 32 + fc_b 4 = 260 elements
#   activations read + written per node: conv 192 + 512, relu 512 + 512, pool 512 + 8,
#   flatten 8 + 8, gemm 8 + 4 → 2276 elements
TINY_MACS, TINY_WEIGHTS, TINY_ACTIVATIONS = 13856, 260, 2276


@pytest.mark.parametrize("batch", [1, 4])
def test_tiny_cnn_cost_by_hand(batch: int) -> None:
    cost = graph_cost(tiny_cnn(), batch)
    assert cost == GraphCost(macs=TINY_MACS * batch, weight_elements=TINY_WEIGHTS,
                             activation_elements=TINY_ACTIVATIONS * batch)
    assert cost.bytes("fp32") == (TINY_WEIGHTS + TINY_ACTIVATIONS * batch) * 4
    assert cost.bytes("fp16") == (TINY_WEIGHTS + TINY_ACTIVATIONS * batch) * 2
    assert cost.bytes("int8") == TINY_WEIGHTS + TINY_ACTIVATIONS * batch


def test_roofline_is_the_larger_of_compute_and_memory_time() -> None:
    cost = graph_cost(tiny_cnn(), 1)
    compute_bound = HardwareSpec(peak_tflops_fp32=0.001, memory_bandwidth_gbs=1.0)  # 1 GFLOP/s, 1 GB/s
    assert roofline_ms(cost, "fp32", compute_bound) == pytest.approx(2 * 13856 / 1e9 * 1e3)  # 0.027712 ms
    memory_bound = HardwareSpec(peak_tflops_fp32=0.001, memory_bandwidth_gbs=0.1)
    assert roofline_ms(cost, "fp32", memory_bound) == pytest.approx(10144 / 0.1e9 * 1e3)  # 0.10144 ms
    assert roofline_ms(cost, "fp32", HardwareSpec(peak_tflops_fp32=0.001)) == pytest.approx(0.027712)
    assert roofline_ms(cost, "int8", compute_bound) is None


def _matmul_model() -> onnx.ModelProto:
    """x [N, 5, 6] @ W [6, 7] → [N, 5, 7]; and x2 [N, 6] → Transpose → Gemm(transA) with V [6, 3]."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("ReduceMean", ["y"], ["m"], axes=[1], keepdims=0, name="mean"),  # [N, 7]
        helper.make_node("Slice", ["m", "start", "end", "axis"], ["s"], name="slice"),  # [N, 6]
        helper.make_node("Transpose", ["s"], ["t"], perm=[1, 0], name="t"),
        helper.make_node("Gemm", ["t", "v"], ["out"], transA=1, name="gemm"),
    ]
    inits = [numpy_helper.from_array(rng.standard_normal((6, 7)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float32), "v"),
             numpy_helper.from_array(np.array([0], np.int64), "start"),
             numpy_helper.from_array(np.array([6], np.int64), "end"),
             numpy_helper.from_array(np.array([1], np.int64), "axis")]
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 6])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_matmul_and_transposed_gemm() -> None:
    cost = graph_cost(_matmul_model(), 2)
    # MatMul: 2·5·7 outputs × K 6 = 420; Gemm(transA): 2·3 outputs × K 6 = 36
    assert cost.macs == 420 + 36
    # weights: w 42 + v 18 (the int64 slice bounds are not counted)
    assert cost.weight_elements == 60
    # mm 60 + 70, mean 70 + 14, slice 14 + 12, transpose 12 + 12, gemm 12 + 6
    assert cost.activation_elements == 130 + 84 + 26 + 24 + 18


def _qdq_conv() -> onnx.ModelProto:
    """QuantizeLinear → DequantizeLinear of the input, per-channel int8 weights through DequantizeLinear, Conv."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "xs"),
        numpy_helper.from_array(np.array(0, np.int8), "xz"),
        numpy_helper.from_array(rng.integers(-127, 127, (8, 3, 3, 3)).astype(np.int8), "wq"),
        numpy_helper.from_array(np.full(8, 0.01, np.float32), "ws"),
        numpy_helper.from_array(np.zeros(8, np.int8), "wz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def test_qdq_model_is_int8_and_its_dequantized_weights_count_as_weights() -> None:
    model = _qdq_conv()
    assert model_precision(model) == "int8"
    assert model_precision(tiny_cnn()) == "fp32"
    cost = graph_cost(model, 1)
    assert cost.macs == 13824
    assert cost.weight_elements == 1 + 1 + 216 + 8 + 8
    # Q: 192 + 192, DQ(x): 192 + 192, Conv: 192 + 512; DQ(w) works on constants only
    assert cost.activation_elements == 1472


def test_estimate_record_is_marked_estimated(tmp_path: Path) -> None:
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_cnn(), str(path))
    target = TargetConfig(name="board", spec=HardwareSpec(peak_tflops_fp32=0.001, memory_bandwidth_gbs=1.0))
    record = estimate_record(path, model_name="tiny", target=target, batch=1, precision="fp32")
    assert record.estimated is True and record.runs == 0 and record.outliers == 0
    assert record.p50_ms == record.p90_ms == record.p99_ms == record.mean_ms == pytest.approx(0.027712)
    assert record.throughput == pytest.approx(1000 / 0.027712)
    assert record.provider == "roofline" and "roofline" in record.method
    with pytest.raises(RuntimeBackendError, match="no int8 peak"):
        estimate_record(path, model_name="tiny", target=target, batch=1, precision="int8")
    with pytest.raises(RuntimeBackendError, match="no spec"):
        estimate_record(path, model_name="tiny", target=TargetConfig(name="x"), batch=1, precision="fp32")


def test_unknown_shapes_are_an_error() -> None:
    model = tiny_cnn(spatial="size")
    with pytest.raises(RuntimeBackendError, match="cannot infer the shapes of Conv"):
        graph_cost(model, 1)
