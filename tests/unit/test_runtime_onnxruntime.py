"""ONNX loading, example inputs and the ONNX Runtime CPU runtime on a tiny CNN."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import TargetConfig
from edgekd.errors import ConfigError, RuntimeBackendError
from edgekd.onnx_model import example_input, input_spec, load_onnx
from edgekd.runtime import RUNTIMES, LatencyRecord, get_runtime
from edgekd.runtime.onnxruntime import OnnxRuntime, layer_times

GRAPH_OPS = {"Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"}
# Nodes ONNX Runtime's layout optimizer inserts or fuses into on CPU.
ORT_CPU_OPS = {"ReorderInput", "ReorderOutput", "FusedConv", "FusedGemm"}

SETTINGS = ProfileConfig(
    warmup_runs=2, min_time_s=0.05, min_runs=5, max_runs=2000, layer_profile_runs=3, top_layers=3
)


def tiny_cnn(batch_dim: int | str = "batch", spatial: int | str = 8) -> onnx.ModelProto:
    """Conv(3→8) + Relu + GlobalAveragePool + Flatten + Gemm(8→4)."""
    rng = np.random.default_rng(0)
    weights = {
        "conv_w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "conv_b": np.zeros(8, np.float32),
        "fc_w": rng.standard_normal((4, 8)).astype(np.float32),
        "fc_b": np.zeros(4, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["output"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, 3, spatial, spatial])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch_dim, 4])],
        [numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny_cnn.onnx"
    onnx.save(tiny_cnn(), str(path))
    return path


@pytest.fixture
def target() -> TargetConfig:
    return TargetConfig(name="test-cpu", threads=1, precisions=["fp32", "int8"])


# --- load_onnx, input_spec, example_input ----------------------------------------------------


def test_load_onnx_reads_a_valid_model(model_path: Path) -> None:
    assert [node.op_type for node in load_onnx(model_path).graph.node] == [
        "Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"
    ]


def _assert_invalid(path: Path) -> None:
    with pytest.raises(RuntimeBackendError) as info:
        load_onnx(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not a valid ONNX model (")
    assert message.endswith("re-export it")


def test_load_onnx_missing_file(tmp_path: Path) -> None:
    _assert_invalid(tmp_path / "model.onnx")


def test_load_onnx_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    _assert_invalid(path)


def test_load_onnx_truncated_model(tmp_path: Path, model_path: Path) -> None:
    data = model_path.read_bytes()
    path = tmp_path / "model.onnx"
    path.write_bytes(data[: len(data) // 2])
    _assert_invalid(path)


def test_load_onnx_rejects_a_model_that_fails_the_checker(tmp_path: Path) -> None:
    model = tiny_cnn()
    model.graph.node[1].input[0] = "does_not_exist"
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    _assert_invalid(path)


def test_input_spec_of_dynamic_batch_model() -> None:
    name, shape, dtype = input_spec(tiny_cnn())
    assert (name, shape, dtype) == ("input", (None, 3, 8, 8), np.dtype(np.float32))


def test_input_spec_rejects_two_inputs() -> None:
    model = tiny_cnn()
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    with pytest.raises(RuntimeBackendError, match="2 inputs \\(input, extra\\)"):
        input_spec(model)


@pytest.mark.parametrize("batch", [1, 4])
def test_example_input_fills_the_batch(model_path: Path, batch: int) -> None:
    x = example_input(model_path, batch)
    assert x.shape == (batch, 3, 8, 8)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, example_input(load_onnx(model_path), batch, seed=0))
    assert not np.array_equal(x, example_input(model_path, batch, seed=1))


def test_example_input_static_batch_must_match() -> None:
    model = tiny_cnn(batch_dim=1)
    assert example_input(model, 1).shape == (1, 3, 8, 8)
    with pytest.raises(RuntimeBackendError, match="fixed batch of 1"):
        example_input(model, 4)


def test_example_input_asks_for_a_static_shape() -> None:
    with pytest.raises(RuntimeBackendError, match="static shape"):
        example_input(tiny_cnn(spatial="size"), 1)


# --- the runtime ------------------------------------------------------------------------------


def test_registry_and_get_runtime(target: TargetConfig) -> None:
    assert "onnxruntime" in RUNTIMES
    runtime = get_runtime(target)
    assert isinstance(runtime, OnnxRuntime)
    assert runtime.check() == []


@pytest.mark.parametrize("batch", [1, 4])
def test_profile_tiny_cnn(model_path: Path, target: TargetConfig, batch: int) -> None:
    record = get_runtime(target).profile(
        model_path, model_name="tiny", batch=batch, precision="fp32", settings=SETTINGS
    )
    assert (record.model, record.target, record.runtime, record.precision, record.batch) == (
        "tiny", "test-cpu", "onnxruntime", "fp32", batch
    )
    assert 0 < record.p50_ms <= record.p90_ms <= record.p99_ms
    assert record.mean_ms > 0 and record.std_ms >= 0
    assert SETTINGS.min_runs <= record.runs <= SETTINGS.max_runs
    assert 0 <= record.outliers <= record.runs
    assert record.throughput == pytest.approx(batch * 1000.0 / record.mean_ms)
    assert record.estimated is False
    assert record.threads == 1
    assert record.provider == "CPUExecutionProvider"
    import onnxruntime

    assert record.runtime_version == onnxruntime.__version__

    layers = record.layers
    assert 0 < len(layers) <= SETTINGS.top_layers
    assert {layer.op_type for layer in layers} <= GRAPH_OPS | ORT_CPU_OPS
    assert any(layer.op_type in GRAPH_OPS for layer in layers)
    assert [layer.mean_ms for layer in layers] == sorted((layer.mean_ms for layer in layers), reverse=True)
    assert all(0 <= layer.share <= 1 for layer in layers)
    assert sum(layer.share for layer in layers) <= 1 + 1e-9

    data = json.loads(json.dumps(record.to_dict()))
    assert isinstance(data["layers"], list)
    assert set(data["layers"][0]) == {"name", "op_type", "mean_ms", "share"}
    assert LatencyRecord.from_dict(data) == record


def test_profile_without_layers_and_default_threads(model_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"layer_profile_runs": 0})
    record = get_runtime(TargetConfig(name="cpu")).profile(
        model_path, model_name="tiny", batch=2, precision="fp32", settings=settings
    )
    assert record.layers == ()
    assert record.threads is not None and record.threads >= 1


def test_bad_provider_names_the_available_ones(model_path: Path) -> None:
    runtime = get_runtime(TargetConfig(name="gpu", providers=["NoSuchExecutionProvider"]))
    assert len(runtime.check()) == 1
    expected = "NoSuchExecutionProvider.*available: .*CPUExecutionProvider"
    with pytest.raises(RuntimeBackendError, match=expected):
        runtime.profile(model_path, model_name="tiny", batch=1, precision="fp32", settings=SETTINGS)


def test_precision_not_in_target(model_path: Path) -> None:
    runtime = get_runtime(TargetConfig(name="cpu", precisions=["fp32"]))
    with pytest.raises(ConfigError, match="'int8' is not one of target 'cpu'"):
        runtime.profile(model_path, model_name="tiny", batch=1, precision="int8", settings=SETTINGS)


def test_bad_batch_and_run_counts(model_path: Path, target: TargetConfig) -> None:
    runtime = get_runtime(target)
    with pytest.raises(ConfigError, match="at least 1"):
        runtime.profile(model_path, model_name="tiny", batch=0, precision="fp32", settings=SETTINGS)
    settings = SETTINGS.model_copy(update={"min_runs": 10, "max_runs": 5})
    with pytest.raises(ConfigError, match="max_runs"):
        runtime.profile(model_path, model_name="tiny", batch=1, precision="fp32", settings=settings)


def test_profile_invalid_file(tmp_path: Path, target: TargetConfig) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not onnx")
    with pytest.raises(RuntimeBackendError, match="not a valid ONNX model"):
        get_runtime(target).profile(path, model_name="x", batch=1, precision="fp32", settings=SETTINGS)


def test_ort_load_failure_is_one_line(tmp_path: Path, target: TargetConfig) -> None:
    model = tiny_cnn()
    model.graph.node[1].op_type = "Unknown"
    model.graph.node[1].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    load_onnx(path)  # passes the checker: the domain is unknown to it
    with pytest.raises(RuntimeBackendError) as info:
        get_runtime(target).profile(path, model_name="x", batch=1, precision="fp32", settings=SETTINGS)
    assert "cannot load it" in str(info.value) and "\n" not in str(info.value)


def test_layer_times_skips_warmup_and_keeps_top() -> None:
    def node(name: str, op: str, ts: int, dur: int) -> dict:
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [
        {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 50},
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 1000},  # warm-up
        node("conv", "Conv", 101, 900),
        {"cat": "Session", "name": "model_run", "ts": 2000, "dur": 100},
        node("conv", "Conv", 2001, 60),
        node("fc", "Gemm", 2070, 20),
        node("relu", "Relu", 2090, 20),
        {"cat": "Session", "name": "model_run", "ts": 3000, "dur": 100},
        node("conv", "Conv", 3001, 40),
        node("fc", "Gemm", 3070, 20),
        node("relu", "Relu", 3090, 40),
        {"cat": "Node", "name": "conv_fence_before", "ts": 3001, "dur": 5, "args": {}},
    ]
    layers = layer_times(events, runs=2, top=2)
    assert [(layer.name, layer.op_type) for layer in layers] == [("conv", "Conv"), ("relu", "Relu")]
    assert layers[0].mean_ms == pytest.approx(0.050)
    assert layers[0].share == pytest.approx(100 / 200)
    assert layers[1].share == pytest.approx(60 / 200)
    assert layer_times([], runs=2, top=2) == ()


def test_layer_times_leave_out_a_preempted_run() -> None:
    def run(ts: int, dur: int, conv_us: int) -> list[dict]:
        return [{"cat": "Session", "name": "model_run", "ts": ts, "dur": dur},
                {"cat": "Node", "name": "conv_kernel_time", "ts": ts + 1, "dur": conv_us, "args": {"op_name": "Conv"}}]

    events = [*run(0, 100, 50), *run(1000, 110, 60), *run(2000, 2000, 1900), *run(5000, 90, 40)]
    (conv,) = layer_times(events, runs=4, top=5)
    assert conv.mean_ms == pytest.approx((50 + 60 + 40) / 3 / 1000)  # the 2000 µs run took the core away


def test_import_edgekd_runtime_does_not_import_onnxruntime() -> None:
    code = "import sys, edgekd, edgekd.runtime; print('onnxruntime' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
