"""Model families, statistics, checkpoints and user-supplied teachers."""

from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from edgekd.config.pipeline import ModelSpec, TeacherConfig
from edgekd.errors import ModelError
from edgekd.models import (
    MODELS,
    build_model,
    count_macs,
    count_params,
    load_checkpoint,
    load_teacher,
    save_checkpoint,
)
from edgekd.models.mobilenet import round_channels
from edgekd.registry import UnknownNameError

FACTORY_MODULE = "edgekd_user_teachers"


class Arbitrary:
    """An object that ``torch.load(weights_only=True)`` must refuse to unpickle."""


def tiny(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelSpec(name="test_tiny"), num_classes, in_channels).eval()


def resnet(depth: int, width: int) -> nn.Module:
    return build_model(ModelSpec(name="resnet_cifar", params={"depth": depth, "width": width}), 10, 3)


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("in_channels", [1, 3])
def test_every_model_maps_any_input_size_to_logits(name: str, in_channels: int) -> None:
    model = build_model(ModelSpec(name=name), 7, in_channels)
    for size in (8, 16):
        assert model(torch.randn(2, in_channels, size, size)).shape == (2, 7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based exporter
@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_is_deterministic_and_exports_to_onnx(name: str) -> None:
    x = torch.randn(2, 3, 8, 8)
    outputs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(ModelSpec(name=name), 10, 3).eval()
        outputs.append(model(x))
    assert torch.equal(outputs[0], outputs[1])
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["input"])
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))


def test_resnet_teacher_is_far_larger_than_student() -> None:
    assert count_params(resnet(20, 32)) >= 10 * count_params(resnet(8, 8))


def test_resnet_has_three_stages_of_n_blocks_and_doubling_widths() -> None:
    model = resnet(14, 8)
    assert [len(stage) for stage in model.stages] == [2, 2, 2]
    assert [stage[-1].conv2[0].out_channels for stage in model.stages] == [8, 16, 32]


def test_mobilenet_rounds_channels_to_multiples_of_8() -> None:
    assert [round_channels(c) for c in (4, 12, 16, 20, 36)] == [8, 16, 16, 24, 40]
    params = {"width_mult": 0.5, "blocks": [1, 1], "channels": [16, 24]}
    model = build_model(ModelSpec(name="mobilenet", params=params), 10, 3)
    assert [stage[-1].block[-1][0].out_channels for stage in model.stages] == [8, 16]


def test_count_params() -> None:
    assert count_params(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))) == 15 + 6


def test_count_macs_matches_hand_computation_and_restores_the_model() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # out 8x8x8 = 512 elements x 3 x 9 = 13824
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4),  # out 8x4x4 = 128 x (8/4) x 9 = 2304
        nn.Flatten(),
        nn.Linear(128, 10),  # 10 x 128 = 1280
    )
    model[1].eval()
    assert count_macs(model, (3, 8, 8)) == 13824 + 2304 + 1280
    assert model.training and not model[1].training
    assert all(not m._forward_hooks for m in model.modules())


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    spec = ModelSpec(name="resnet_cifar", params={"depth": 8, "width": 8})
    model = build_model(spec, 10, 1)
    model(torch.randn(4, 1, 8, 8))  # moves the batch-norm statistics off their initial values
    model.eval()
    path = tmp_path / "sub" / "student.pt"
    save_checkpoint(path, model, spec, 10, (1, 8, 8))
    assert [p.name for p in path.parent.iterdir()] == ["student.pt"]  # no temporary file left
    loaded = load_checkpoint(path)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(loaded.module(x), model(x))
    assert (loaded.spec, loaded.num_classes, loaded.input_shape) == (spec, 10, (1, 8, 8))
    assert not loaded.module.training


def test_checkpoint_whose_weights_do_not_fit_its_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    spec = ModelSpec(name="resnet_cifar", params={"depth": 8, "width": 8})
    save_checkpoint(path, resnet(8, 8), spec, 10, (3, 8, 8))
    payload = torch.load(path, weights_only=True)
    payload["spec"]["params"]["width"] = 16
    payload["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(payload, path)
    with pytest.raises(ModelError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(
        f"checkpoint {path} does not fit resnet_cifar(depth=8, width=16): unexpected keys extra.weight;"
        " shapes differ stem.0.weight (8, 3, 3, 3) (model: (16, 3, 3, 3)), stem.1.weight (8,) (model: (16,)),"
    )
    assert str(info.value).endswith(" more")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "not found"),
        (b"truncated", "truncated or not a torch.save file"),
        ({"x": Arbitrary()}, "holds objects other than tensors and plain containers"),
        ({"stem.weight": torch.zeros(1)}, "not an edgekd checkpoint"),
        ({"format": "edgekd-checkpoint/9"}, "has format 'edgekd-checkpoint/9'"),
        ({"format": "edgekd-checkpoint/1", "spec": {"name": "test_tiny"}}, "malformed \\(KeyError: 'num_classes'\\)"),
    ],
)
def test_bad_checkpoint_files_raise_model_error(tmp_path: Path, payload: object, message: str) -> None:
    path = tmp_path / "model.pt"
    if payload == b"truncated":
        save_checkpoint(path, tiny(), ModelSpec(name="test_tiny"), 10, (1, 8, 8))
        path.write_bytes(path.read_bytes()[:200])
    elif payload is not None:
        torch.save(payload, path)
    with pytest.raises(ModelError, match=message):
        load_checkpoint(path)


def test_build_model_names_accepted_params_for_an_unknown_one() -> None:
    with pytest.raises(ModelError) as info:
        build_model(ModelSpec(name="resnet_cifar", params={"dept": 20}), 10, 3)
    assert str(info.value) == "model resnet_cifar: unknown parameter 'dept' (accepted: depth, width)"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("resnet_cifar", {"depth": 21}, r"resnet_cifar: depth must be 6n\+2 with n >= 1 \(8, 14, 20"),
        ("resnet_cifar", {"width": "16"}, "width must be an integer >= 1, got '16'"),
        ("mobilenet", {"blocks": [1, 1]}, "blocks and channels must have the same length"),
        ("mobilenet", {"width_mult": 0}, "width_mult must be a number > 0"),
        ("plain_cnn", {"kernel_size": 4}, r"kernel_size must be an odd integer >= 1 \(1, 3, 5, \.\.\.\)"),
        ("plain_cnn", {"channels": []}, "channels must be a non-empty list"),
    ],
)
def test_build_model_rejects_invalid_values(name: str, params: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build_model(ModelSpec(name=name, params=params), 10, 3)


def test_build_model_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'resnet_cifar'"):
        build_model(ModelSpec(name="resnet_cifr"), 10, 3)


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A user module on sys.path with ``make(num_classes)``, a 1-channel 8x8 classifier."""
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(
        textwrap.dedent(
            """
            import torch

            def make(num_classes=10):
                torch.manual_seed(0)
                return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield FACTORY_MODULE
    sys.modules.pop(FACTORY_MODULE, None)


def test_load_teacher_returns_none_when_the_teacher_must_be_trained() -> None:
    assert load_teacher(TeacherConfig(model=ModelSpec(name="test_tiny")), 10, (1, 8, 8), None) is None


@pytest.mark.parametrize("as_checkpoint", [False, True])
def test_load_teacher_from_weights(tmp_path: Path, as_checkpoint: bool) -> None:
    model = tiny()
    if as_checkpoint:
        save_checkpoint(tmp_path / "w.pt", model, ModelSpec(name="test_tiny"), 10, (1, 8, 8))
    else:
        torch.save(model.state_dict(), tmp_path / "w.pt")
    cfg = TeacherConfig(model=ModelSpec(name="test_tiny"), weights=Path("w.pt"))
    teacher = load_teacher(cfg, 10, (1, 8, 8), tmp_path)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(teacher(x), model(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script is deprecated
def test_load_teacher_from_torchscript(tmp_path: Path) -> None:
    model = tiny()
    torch.jit.script(model).save(str(tmp_path / "teacher.ts"))
    teacher = load_teacher(TeacherConfig(torchscript=Path("teacher.ts")), 10, (1, 8, 8), tmp_path)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(teacher(x), model(x))


def test_load_teacher_from_export_archive(tmp_path: Path) -> None:
    model = tiny()
    x = torch.randn(2, 1, 8, 8)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "teacher.pt2")
    teacher = load_teacher(TeacherConfig(export_archive=tmp_path / "teacher.pt2"), 10, (1, 8, 8), None)
    teacher.train()  # a no-op for the fixed graph, but it must not raise
    assert torch.allclose(teacher(x), model(x), atol=1e-6)


def test_load_teacher_from_factory(factory_module: str) -> None:
    cfg = TeacherConfig(factory=f"{factory_module}:make", factory_args={"num_classes": 10})
    teacher = load_teacher(cfg, 10, (1, 8, 8), None)
    assert teacher(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_load_teacher_refuses_a_teacher_for_other_classes(factory_module: str) -> None:
    cfg = TeacherConfig(factory=f"{factory_module}:make", factory_args={"num_classes": 100})
    with pytest.raises(ModelError, match="teacher outputs 100 classes but the data has 10"):
        load_teacher(cfg, 10, (1, 8, 8), None)


@pytest.mark.parametrize(
    ("factory", "args", "message"),
    [
        ("no_colon", {}, "must have the form 'package.module:function'"),
        ("pkg.mod:", {}, "must have the form"),
        ("a b:c", {}, "must have the form"),
        ("edgekd_no_such_module:make", {}, "cannot import 'edgekd_no_such_module'"),
        (f"{FACTORY_MODULE}:mak", {}, "has no function 'mak' \\(did you mean 'make'\\?\\)"),
        (f"{FACTORY_MODULE}:make", {"classes": 3}, "factory_args do not fit it"),
    ],
)
def test_load_teacher_bad_factories(factory_module: str, factory: str, args: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_teacher(TeacherConfig(factory=factory, factory_args=args), 10, (1, 8, 8), None)


def test_load_teacher_errors(tmp_path: Path, factory_module: str) -> None:
    with pytest.raises(ModelError, match="TorchScript model not found: .*missing.ts"):
        load_teacher(TeacherConfig(torchscript=Path("missing.ts")), 10, (1, 8, 8), tmp_path)
    (tmp_path / "bad.pt2").write_bytes(b"not an archive")
    with pytest.raises(ModelError, match="torch.export archive .*bad.pt2 cannot be loaded"):
        load_teacher(TeacherConfig(export_archive=tmp_path / "bad.pt2"), 10, (1, 8, 8), None)
    torch.save(tiny(in_channels=3).state_dict(), tmp_path / "w.pt")
    cfg = TeacherConfig(model=ModelSpec(name="test_tiny"), weights=tmp_path / "w.pt")
    with pytest.raises(ModelError, match=r"w.pt does not fit test_tiny\(\): shapes differ stem.0.weight"):
        load_teacher(cfg, 10, (1, 8, 8), None)
    cfg = TeacherConfig(factory=f"{factory_module}:make")
    with pytest.raises(ModelError, match=r"teacher cannot run on an input of shape \(1, 3, 8, 8\)"):
        load_teacher(cfg, 10, (3, 8, 8), None)
