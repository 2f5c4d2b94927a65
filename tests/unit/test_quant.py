"""The quant package: BatchNorm folding, NNCF QAT and its INT8 export, QKD's phases, the
TensorRT QDQ rule checker and the ONNX Runtime PTQ baseline (real NNCF, real ONNX Runtime)."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn
from torch.utils.data import TensorDataset

from edgekd.config import DataConfig, LossSpec, ModelSpec, TrainConfig
from edgekd.data import DataSplits, load_data
from edgekd.distill import build_losses, evaluate, train_model
from edgekd.errors import EdgeKDError
from edgekd.export.onnx import export_onnx
from edgekd.models import MODELS, build_model
from edgekd.quant import (
    QuantizationError,
    check_tensorrt_qdq,
    co_study,
    ensure_nncf_extension,
    export_int8_onnx,
    fold_batchnorm,
    nncf_extension_ready,
    ort_static_ptq,
    quantize_for_training,
    quantizer_count,
    remaining_batchnorms,
    run_qkd,
    self_study,
    strip,
    tutor,
)
from edgekd.quant import nncf_qat, qdq_rules
from edgekd.quant.onnx_graph import constant_values

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]

SHAPE = (1, 8, 8)
SMALL_CNN = ModelSpec(name="plain_cnn", params={"channels": [8, 16]})


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """On 2 shared cores, torch's 2 intra-op threads fight other processes: one thread
    trains these tiny models 10-50x faster under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_data(DataConfig(kind="digits", batch_size=64), seed=0)


@pytest.fixture(scope="module")
def small_digits(digits: DataSplits) -> DataSplits:
    """256 training images, 64 for validation: enough to see parameters move."""
    train_x, train_y = digits.train.tensors
    val_x, val_y = digits.val.tensors
    return dataclasses.replace(
        digits,
        train=TensorDataset(train_x[:256], train_y[:256]),
        val=TensorDataset(val_x[:64], val_y[:64]),
    )


@pytest.fixture(scope="module")
def fp32_student(digits: DataSplits) -> nn.Module:
    """plain_cnn [8, 16] trained for 3 epochs on digits (~90% test accuracy)."""
    torch.manual_seed(0)
    model = build_model(SMALL_CNN, digits.num_classes, digits.input_shape[0])
    train_model(model, digits.train, TrainConfig(epochs=3, lr=0.2, batch_size=32), default_batch_size=32, seed=0)
    return model.eval()


@pytest.fixture(scope="module")
def qstudent(fp32_student: nn.Module, digits: DataSplits) -> nn.Module:
    ensure_nncf_extension()
    return quantize_for_training(fp32_student, digits.train.tensors[0], subset_size=64)


@pytest.fixture(scope="module")
def int8_onnx(qstudent: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("int8") / "student_int8.onnx"
    export_int8_onnx(qstudent, SHAPE, path)
    return path


def _randomize_batchnorms(model: nn.Module) -> nn.Module:
    """Give every BN non-trivial statistics and affine parameters, so a wrong fold shows."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.3)
    return model.eval()


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}


def _changed(before: dict[str, torch.Tensor], model: nn.Module) -> set[str]:
    after = _params(model)
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


# --------------------------------------------------------------------------- BatchNorm folding


@pytest.mark.parametrize("name", MODELS.names())
def test_fold_batchnorm_keeps_the_function_and_leaves_no_batchnorm(name: str) -> None:
    torch.manual_seed(0)
    model = _randomize_batchnorms(build_model(ModelSpec(name=name), 10, 1))
    original = copy.deepcopy(model.state_dict())
    folded = fold_batchnorm(model)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5, rtol=0)
    assert remaining_batchnorms(folded) == []
    assert remaining_batchnorms(model)  # the input is untouched
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())


def test_fold_batchnorm_traces_models_with_named_conv_and_bn() -> None:
    class Named(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(4)
            self.bn_alone = nn.BatchNorm2d(4)  # follows a ReLU: cannot be folded
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.bn_alone(torch.relu(self.bn1(self.conv1(x)))).mean((2, 3)))

    torch.manual_seed(0)
    model = _randomize_batchnorms(Named())
    folded = fold_batchnorm(model)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5, rtol=0)
    assert remaining_batchnorms(folded) == ["bn_alone"]


# --------------------------------------------------------------------------- NNCF QAT and export


def test_extension_is_ready_after_ensure_and_not_announced_again() -> None:
    ensure_nncf_extension()
    notes: list[str] = []
    assert ensure_nncf_extension(notes.append) == 0.0
    assert notes == [] and nncf_extension_ready()


def test_a_cold_extension_cache_is_detected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU

    monkeypatch.setattr(nncf_qat, "nncf_extension_path", lambda: tmp_path / "quantized_functions_cpu.so")
    monkeypatch.setattr(QuantizedFunctionsCPU, "_loaded_namespace", None)
    assert not nncf_extension_ready()


def test_a_cold_cache_build_is_announced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU

    monkeypatch.setattr(nncf_qat, "nncf_extension_path", lambda: tmp_path / "quantized_functions_cpu.so")
    monkeypatch.setattr(QuantizedFunctionsCPU, "_loaded_namespace", None)
    loads: list[str] = []

    def fake_get(fn_name: str) -> object:  # stands in for the ~30 s compile
        loads.append(fn_name)
        QuantizedFunctionsCPU._loaded_namespace = object()
        return object()

    monkeypatch.setattr(QuantizedFunctionsCPU, "get", fake_get)
    notes: list[str] = []
    ensure_nncf_extension(notes.append)
    assert loads == ["Quantize_forward"]
    assert len(notes) == 2
    assert "compiling NNCF's C++ quantization extension" in notes[0] and str(tmp_path) in notes[0]
    assert "built in" in notes[1]


def test_quantize_for_training_inserts_int8_quantizers_and_leaves_the_model(
    fp32_student: nn.Module, qstudent: nn.Module
) -> None:
    counts = quantizer_count(qstudent)
    assert counts["weights"] == 3  # two convs and the linear layer
    assert counts["activations"] >= 3
    assert remaining_batchnorms(fp32_student)  # the FP32 student keeps its BN
    assert remaining_batchnorms(qstudent) == []
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        assert qstudent(x).shape == (2, 10)


def test_bad_quantization_requests_are_user_errors() -> None:
    model = build_model(ModelSpec(name="test_tiny"), 10, 1)
    calib = torch.randn(8, *SHAPE)
    with pytest.raises(QuantizationError, match="8 samples but subset_size asks for 16"):
        quantize_for_training(model, calib, subset_size=16)
    with pytest.raises(QuantizationError, match="bits=4"):
        quantize_for_training(model, calib, subset_size=8, bits=4)
    with pytest.raises(QuantizationError, match="no layer NNCF quantizes"):
        quantize_for_training(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), calib, subset_size=8)
    assert issubclass(QuantizationError, EdgeKDError)


def test_int8_export_is_symmetric_per_channel_qdq_and_matches_torch(
    qstudent: nn.Module, int8_onnx: Path, digits: DataSplits
) -> None:
    import onnxruntime as ort

    model = onnx.load(str(int8_onnx))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    consts = constant_values(model.graph)
    conv_weight_dq = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero_point = consts[node.input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any()
        if node.op_type == "DequantizeLinear" and node.input[0] in consts:  # a weight, stored as INT8
            assert consts[node.input[0]].dtype == np.int8
            conv_weight_dq.append(helper.get_attribute_value(node.attribute[0]) if node.attribute else 1)
    assert conv_weight_dq == [0, 0, 0]  # per channel along the output axis
    assert check_tensorrt_qdq(model) == []

    x = digits.test.tensors[0][:256]
    with torch.no_grad():
        expected = strip(qstudent, SHAPE)(x).numpy()
    # without graph optimizations ONNX Runtime computes Q/DQ in float, as torch does; the two sum a
    # convolution in different orders, so an activation on a rounding edge can land one step apart
    # (1 sample of 256 on an AMD EPYC): a rare sample may differ, a wrong scale or axis moves them all
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(int8_onnx), plain, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    samples_off = np.abs(got - expected).max(axis=1) > 1e-5
    assert samples_off.mean() <= 0.01
    # optimized, it fuses Q/DQ into integer kernels: a value on a rounding edge may move one
    # quantization step, which must not change the predictions
    got = ort.InferenceSession(str(int8_onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.99


def test_qdq_values_are_named_after_what_they_quantize(qstudent: nn.Module, int8_onnx: Path, tmp_path: Path) -> None:
    ort_form = tmp_path / "ort.onnx"
    export_int8_onnx(qstudent, SHAPE, ort_form, unsigned_after_relu=True)
    for path in (int8_onnx, ort_form):
        graph = onnx.load(str(path)).graph
        inits = {i.name for i in graph.initializer}
        qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        names = [n.name for n in qdq] + [v for n in qdq for v in (*n.input[1:], *n.output)]
        assert not [x for x in names if "nncf" in x or "::" in x], names  # no hook ids, no exporter counters
        assert len({n.name for n in graph.node}) == len(graph.node)
        weights = [n for n in qdq if n.input[0] in inits]
        assert [n.name for n in weights] == [f"{w}.weight/DequantizeLinear" for w in ("stem.0", "stages.0.0", "head.2")]
        assert all(n.input[1] == n.name.replace("/DequantizeLinear", "_scale") for n in weights)
        assert qdq[0].name == "input/QuantizeLinear" and qdq[0].input[1] == "input_scale"


def test_qdq_before_relu_is_exact_and_lets_onnxruntime_fuse_integer_convs(
    qstudent: nn.Module, int8_onnx: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort

    tensorrt_form = tmp_path / "trt.onnx"
    info = export_int8_onnx(qstudent, SHAPE, tensorrt_form, qdq_before_relu=False)
    assert info["qdq_before_relu"] == 0 and info["weights_folded"] == 3
    assert check_tensorrt_qdq(onnx.load(str(tensorrt_form))) == []

    x = np.random.default_rng(0).standard_normal((16, *SHAPE)).astype(np.float32)
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    outputs = [
        ort.InferenceSession(str(p), plain, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        for p in (int8_onnx, tensorrt_form)
    ]
    assert np.array_equal(outputs[0], outputs[1])

    def optimized_ops(path: Path) -> list[str]:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"{path.stem}.opt.onnx")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]

    assert optimized_ops(int8_onnx).count("QLinearConv") == 2
    assert "QLinearConv" not in optimized_ops(tensorrt_form)  # Conv → Relu → Q runs in float


# --------------------------------------------------------------------------- QKD phases


@pytest.fixture
def phase_models(qstudent: nn.Module, digits: DataSplits) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(1)
    teacher = build_model(SMALL_CNN, digits.num_classes, digits.input_shape[0]).eval()
    return copy.deepcopy(qstudent), teacher


PHASE = TrainConfig(epochs=1, lr=0.01, batch_size=64)


def hinton(weight: float = 0.9):
    return build_losses([LossSpec(name="hinton", weight=weight, params={"temperature": 4.0})], "qkd")


def test_self_studying_updates_only_the_student(phase_models, small_digits: DataSplits) -> None:
    student, teacher = phase_models
    s_before, t_before = _params(student), _params(teacher)
    result = self_study(student, small_digits, PHASE)
    assert result is not None and len(result.history) == 1
    assert _changed(s_before, student)
    assert not _changed(t_before, teacher)


def test_co_studying_updates_student_and_teacher_copy(phase_models, small_digits: DataSplits) -> None:
    student, teacher = phase_models
    teacher_copy = copy.deepcopy(teacher)
    s_before, t_before = _params(student), _params(teacher)
    result = co_study(student, teacher_copy, small_digits, PHASE, hinton())
    assert result is not None
    student_history, teacher_history = result
    assert len(student_history.history) == len(teacher_history) == 1
    changed = _changed(s_before, student)
    assert any("scale" in k for k in changed)  # the quantizer ranges train too
    assert any(k.endswith("weight") for k in changed)
    assert {k for k in _changed(t_before, teacher_copy) if k.endswith("weight")}
    assert not _changed(t_before, teacher)  # the original is never touched


def test_tutoring_freezes_the_teacher(phase_models, small_digits: DataSplits) -> None:
    student, teacher = phase_models
    s_before, t_before = _params(student), _params(teacher)
    result = tutor(student, teacher, small_digits, PHASE, hinton(), ce_weight=0.1)
    assert result is not None
    assert _changed(s_before, student)
    assert not _changed(t_before, teacher)  # weights and BN statistics
    assert all(p.requires_grad for p in teacher.parameters())  # restored


def test_zero_epochs_skip_a_phase(phase_models, small_digits: DataSplits) -> None:
    student, teacher = phase_models
    s_before, t_before = _params(student), _params(teacher)
    skip = TrainConfig(epochs=0)
    losses = hinton(1.0)
    assert self_study(student, small_digits, skip) is None
    assert co_study(student, teacher, small_digits, skip, losses) is None
    assert tutor(student, teacher, small_digits, skip, losses) is None
    assert not _changed(s_before, student) and not _changed(t_before, teacher)


def test_run_qkd_never_modifies_the_teacher(phase_models, small_digits: DataSplits, tmp_path: Path) -> None:
    student, teacher = phase_models
    t_before = _params(teacher)
    result, teacher_copy = run_qkd(
        student,
        teacher,
        small_digits,
        self_studying=TrainConfig(epochs=0),
        co_studying=PHASE,
        tutoring=PHASE,
        losses=hinton(),
    )
    assert set(result.phases) == {"co_studying", "tutoring"}
    assert not _changed(t_before, teacher)
    assert _changed(t_before, teacher_copy)
    path = tmp_path / "qkd.onnx"
    export_int8_onnx(student, SHAPE, path)  # a trained quantized student still exports cleanly
    assert check_tensorrt_qdq(onnx.load(str(path))) == []


@pytest.mark.parametrize("co_studying_epochs", [1, 0])
def test_a_torchscript_teacher_is_copied_trained_and_frozen_like_any_other(
    phase_models, small_digits: DataSplits, co_studying_epochs: int
) -> None:
    # copy.deepcopy of a TorchScript module gives non-leaf parameters, which co-studying's optimizer
    # and tutoring's requires_grad_ refused (exit 3 for a `stages.teacher.torchscript` pipeline)
    student, teacher = phase_models
    scripted = torch.jit.script(teacher).eval()
    t_before = _params(scripted)
    result, teacher_copy = run_qkd(
        student, scripted, small_digits, self_studying=TrainConfig(epochs=0),
        co_studying=PHASE.model_copy(update={"epochs": co_studying_epochs}), tutoring=PHASE, losses=hinton(),
    )
    assert "tutoring" in result.phases
    assert not _changed(t_before, scripted)
    assert bool(_changed(t_before, teacher_copy)) == (co_studying_epochs > 0)


def test_co_studying_a_teacher_without_parameters_is_a_user_error(
    phase_models, small_digits: DataSplits, tmp_path: Path
) -> None:
    student, teacher = phase_models
    torch.jit.freeze(torch.jit.script(teacher).eval()).save(str(tmp_path / "frozen.ts"))
    frozen = torch.jit.load(str(tmp_path / "frozen.ts")).eval()  # as stages.teacher.torchscript loads it
    assert not list(frozen.parameters())
    with pytest.raises(QuantizationError, match="co_studying.epochs: 0"):
        co_study(student, frozen, small_digits, PHASE, hinton())


def test_a_teacher_with_other_classes_is_a_user_error(phase_models, small_digits: DataSplits) -> None:
    student, _ = phase_models
    other = build_model(ModelSpec(name="test_tiny"), 7, 1)
    with pytest.raises(QuantizationError, match="7"):
        tutor(student, other, small_digits, PHASE, hinton(1.0))
    with pytest.raises(QuantizationError, match="same 10 classes"):
        co_study(student, other, small_digits, PHASE, hinton(1.0))


# --------------------------------------------------------------------------- the TensorRT QDQ rules


def _edit(path: Path) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    model = onnx.load(str(path))
    return model, {init.name: init for init in model.graph.initializer}


def _first(model: onnx.ModelProto, op_type: str, weight: bool | None = None) -> onnx.NodeProto:
    inits = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == op_type and (weight is None or (node.input[0] in inits) == weight):
            return node
    raise AssertionError(f"no {op_type}")


def _replace_init(model: onnx.ModelProto, name: str, array: np.ndarray) -> None:
    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(array, name))
            return
    raise AssertionError(name)


def _rules(model: onnx.ModelProto) -> set[tuple[str, str]]:
    return {(v.node, v.rule) for v in check_tensorrt_qdq(model)}


def test_qdq_checker_flags_a_nonzero_zero_point(int8_onnx: Path) -> None:
    model, inits = _edit(int8_onnx)
    dq = _first(model, "DequantizeLinear", weight=True)
    zp = numpy_helper.to_array(inits[dq.input[2]]).copy()
    zp[0] = 3
    _replace_init(model, dq.input[2], zp)
    assert (dq.name, qdq_rules.RULE_ZERO_POINT) in _rules(model)


def test_qdq_checker_flags_uint8(int8_onnx: Path) -> None:
    model, _ = _edit(int8_onnx)
    q = _first(model, "QuantizeLinear", weight=False)
    _replace_init(model, q.input[2], np.zeros((), np.uint8))
    violations = check_tensorrt_qdq(model)
    assert any(v.rule == qdq_rules.RULE_INT8 and "UINT8" in v.message for v in violations)
    assert q.name in {v.node for v in violations}


def test_qdq_checker_flags_a_per_tensor_conv_weight(int8_onnx: Path) -> None:
    model, inits = _edit(int8_onnx)
    dq = _first(model, "DequantizeLinear", weight=True)
    _replace_init(model, dq.input[1], np.array(0.01, np.float32))
    _replace_init(model, dq.input[2], np.array(0, np.int8))
    assert _rules(model) == {(dq.name, qdq_rules.RULE_WEIGHT_PER_CHANNEL)}


def test_qdq_checker_flags_per_channel_scales_that_do_not_fit_the_channels(int8_onnx: Path) -> None:
    model, inits = _edit(int8_onnx)
    dq = _first(model, "DequantizeLinear", weight=True)
    scale = numpy_helper.to_array(inits[dq.input[1]])
    _replace_init(model, dq.input[1], np.concatenate([scale, scale]))
    _replace_init(model, dq.input[2], np.zeros(2 * scale.size, np.int8))
    violation = next(v for v in check_tensorrt_qdq(model) if v.node == dq.name)
    assert violation.rule == qdq_rules.RULE_WEIGHT_PER_CHANNEL
    assert f"{2 * scale.size} scales for the {scale.size} channels" in violation.message


def test_qdq_checker_flags_a_bad_scale_and_a_float_island(int8_onnx: Path) -> None:
    model, inits = _edit(int8_onnx)
    dq = _first(model, "DequantizeLinear", weight=True)
    scale = numpy_helper.to_array(inits[dq.input[1]]).copy()
    scale[1] = -scale[1]
    _replace_init(model, dq.input[1], scale)
    conv = _first(model, "Conv")
    conv.input[0] = "input"  # the first conv now reads the float input directly
    rules = _rules(model)
    assert (dq.name, qdq_rules.RULE_SCALE) in rules
    bad_scale = next(v for v in check_tensorrt_qdq(model) if v.rule == qdq_rules.RULE_SCALE)
    assert f"scale[1] is {scale[1]:g} (1 of {scale.size} bad)" in bad_scale.message
    assert (conv.name, qdq_rules.RULE_FLOAT_ISLAND) in rules
    island = next(v for v in check_tensorrt_qdq(model) if v.rule == qdq_rules.RULE_FLOAT_ISLAND)
    assert "input 'input'" in island.message


def test_qdq_checker_flags_an_unquantized_fp32_model(fp32_student: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "fp32.onnx"
    export_onnx(fp32_student, SHAPE, path)
    violations = check_tensorrt_qdq(onnx.load(str(path)))
    assert {v.rule for v in violations} == {qdq_rules.RULE_FLOAT_ISLAND}
    assert len(violations) == 3  # two Conv and one Gemm


# --------------------------------------------------------------------------- the PTQ baseline


def test_ort_static_ptq_passes_the_rules_and_agrees_with_fp32(
    fp32_student: nn.Module, digits: DataSplits, tmp_path: Path
) -> None:
    import onnxruntime as ort

    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "ptq.onnx"
    export_onnx(fp32_student, SHAPE, fp32_path)
    ort_static_ptq(fp32_path, int8_path, digits.train.tensors[0][:256].numpy())
    assert check_tensorrt_qdq(onnx.load(str(int8_path))) == []
    x = digits.test.tensors[0].numpy()
    fp32 = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    int8 = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.9
    assert evaluate(fp32_student, digits.test) > 0.8  # the model learned something to agree on


def test_ort_static_ptq_rejects_an_empty_calibration_set(tmp_path: Path) -> None:
    with pytest.raises(QuantizationError):
        ort_static_ptq(tmp_path / "x.onnx", tmp_path / "y.onnx", np.zeros((0, 1, 8, 8), np.float32))


def test_onnxruntime_form_folds_each_relu_into_its_integer_conv(qstudent: nn.Module, tmp_path: Path) -> None:
    import onnxruntime as ort

    from edgekd.quant.onnx_graph import constant_values

    path = tmp_path / "ort.onnx"
    info = export_int8_onnx(qstudent, SHAPE, path, unsigned_after_relu=True)
    assert info["unsigned_after_relu"] == 2 and info["qdq_before_relu"] == 0
    graph = onnx.load(str(path))
    consts = constant_values(graph.graph)
    after_relu = [n for n in graph.graph.node if n.op_type == "QuantizeLinear"
                  and any(p.op_type == "Relu" and n.input[0] in p.output for p in graph.graph.node)]
    assert after_relu and all(consts[n.input[2]].dtype == np.uint8 for n in after_relu)
    assert {v.rule for v in check_tensorrt_qdq(graph)} == {"int8"}  # not TensorRT's form, and the checker says so

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "ort.opt.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert ops.count("QLinearConv") == 2 and "Relu" not in ops


def test_quantizing_and_stripping_print_no_third_party_noise() -> None:
    # nncf.strip imports torchao, which logs that its CUDA kernels and Triton are missing and makes
    # torch log a deprecation warning; NNCF logs its extension load at INFO. In a fresh process (the
    # imports happen once), with logging set up as the CLI sets it, the user's stderr stays clean.
    code = ("import logging; logging.basicConfig(level=logging.WARNING);"
            " import torch; from edgekd.config import ModelSpec; from edgekd.models import build_model;"
            " from edgekd.quant import ensure_nncf_extension, quantize_for_training, strip;"
            " ensure_nncf_extension();"
            " model = build_model(ModelSpec(name='plain_cnn', params={'channels': [4, 8]}), 10, 1);"
            " strip(quantize_for_training(model, torch.randn(4, 1, 16, 16), subset_size=4), (1, 16, 16))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for noise in ("register_constant", "torchao", "triton", "Failed to load", "INFO:nncf"):
        assert noise not in result.stderr, result.stderr
