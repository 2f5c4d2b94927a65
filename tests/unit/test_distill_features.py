"""Feature taps, adapters, the methods' own stages, sample indices, born-again generations,
and the bad inputs of the method library (each a ConfigError that names the loss and the layer)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

from edgekd.config import DataConfig, LossSpec, ModelSpec, PipelineConfig, TrainConfig
from edgekd.config.pipeline import TapsSpec
from edgekd.distill import LOSSES, DistillLoss, KDInputs, build_losses, train_model
from edgekd.distill.checks import check_losses
from edgekd.distill.features import default_taps
from edgekd.errors import ConfigError
from edgekd.models import build_model
from edgekd.models.user import ExportedModule
from edgekd.progress import NullProgress


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread avoids OpenMP's overhead on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TEACHER = ModelSpec(name="plain_cnn", params={"channels": [8, 16, 16]})
STUDENT = ModelSpec(name="plain_cnn", params={"channels": [4, 8]})


def _data(n: int = 48) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    return torch.utils.data.TensorDataset(x, y)


def _model(spec: ModelSpec, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(spec, 3, 1)


def _spec(name: str, **fields) -> LossSpec:
    return LossSpec(name=name, **fields)


def _distill(specs: list[LossSpec], student: nn.Module | None = None, teacher: nn.Module | None = None,
             progress=None, epochs: int = 1):
    student = student or _model(STUDENT, 1)
    teacher = teacher or _model(TEACHER, 0)
    losses = build_losses(specs, "stages.distill")
    kwargs = {"progress": progress} if progress else {}
    train_model(student, _data(), TrainConfig(epochs=epochs, lr=0.05), default_batch_size=16, seed=0,
                teacher=teacher, losses=losses, ce_weight=0.5, **kwargs)
    return student, teacher, losses


# --- every method trains a student; adapters stay out of it -----------------------------------------

@pytest.mark.parametrize("name", LOSSES.names())
def test_every_method_trains_and_leaves_teacher_and_student_layout_alone(name: str) -> None:
    teacher = _model(TEACHER, 0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student, _, _ = _distill([_spec(name, params=_fast(name))], teacher=teacher)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert student.state_dict().keys() == _model(STUDENT).state_dict().keys()  # adapters live in the loss
    assert all(torch.isfinite(p).all() for p in student.parameters())


def _fast(name: str) -> dict:
    return {"fitnets": {"hint_epochs": 1}, "ab": {"init_epochs": 1}, "ft": {"paraphraser_epochs": 1}}.get(name, {})


def test_adapters_are_trained_with_the_student() -> None:
    loss = build_losses([_spec("fitnets", params={"hint_epochs": 0})], "x")[0][1]
    student, teacher = _model(STUDENT, 1), _model(TEACHER, 0)
    torch.manual_seed(5)
    train_model(student, _data(), TrainConfig(epochs=0), default_batch_size=16, seed=0, teacher=teacher,
                losses=[(1.0, loss)])
    initial = {k: v.clone() for k, v in loss.state_dict().items()}
    assert any(isinstance(m, nn.Conv2d) for m in loss.modules()), "channels differ: a 1x1 conv regressor"
    torch.manual_seed(5)
    loss = build_losses([_spec("fitnets", params={"hint_epochs": 0})], "x")[0][1]
    train_model(student, _data(), TrainConfig(epochs=1), default_batch_size=16, seed=0, teacher=teacher,
                losses=[(1.0, loss)])
    assert any(not torch.equal(initial[k], v) for k, v in loss.state_dict().items())


# --- the methods' own stages -------------------------------------------------------------------------

class _Recorder(NullProgress):
    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, task: str, total: int | None = None) -> None:
        self.started.append(task)


def test_hint_initialization_and_paraphraser_stages_run_before_the_main_epochs() -> None:
    progress = _Recorder()
    specs = [_spec("fitnets", params={"hint_epochs": 1}), _spec("ab", weight=0.0, params={"init_epochs": 1}),
             _spec("ft", params={"paraphraser_epochs": 1}), _spec("ofd")]
    _, _, losses = _distill(specs, progress=progress)
    assert progress.started == ["train · fitnets hint stage", "train · ab initialization", "train · ft paraphraser",
                                "train · ofd margins", "train"]
    ft, ofd = losses[2][1], losses[3][1]
    assert not any(p.requires_grad for p in ft.paraphrasers.parameters()), "the paraphraser is frozen"
    assert not ft.train().paraphrasers.training
    assert (ofd.margin(0) < 0).any(), "OFD measured negative margins on the training data"


def test_losses_see_every_sample_index_once_per_epoch() -> None:
    class Indices(DistillLoss):
        needs_indices: ClassVar[bool] = True

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[int] = []

        def forward(self, batch: KDInputs) -> torch.Tensor:
            self.seen += batch.indices.tolist()
            return batch.student_logits.sum() * 0

    recorder = Indices()
    train_model(_model(STUDENT), _data(), TrainConfig(epochs=2), default_batch_size=16, seed=0,
                teacher=_model(TEACHER), losses=[(1.0, recorder)])
    assert sorted(recorder.seen) == sorted(list(range(48)) * 2)


def test_teacher_free_kd_needs_no_teacher() -> None:
    train_model(_model(STUDENT), _data(), TrainConfig(epochs=1), default_batch_size=16, seed=0,
                losses=build_losses([_spec("tf_kd")], "x"))


# --- taps ---------------------------------------------------------------------------------------------

def test_default_taps_of_the_families() -> None:
    resnet = build_model(ModelSpec(name="resnet_cifar", params={"depth": 8, "width": 4}), 3, 1)
    assert default_taps(resnet, "stages") == ["stages.0", "stages.1", "stages.2"]
    assert default_taps(resnet, "points") == ["stem", "stages.0", "stages.1", "stages.2"]
    assert default_taps(resnet, "middle") == ["stages.1"]
    assert default_taps(resnet, "last", preactivation=True) == ["stages.2.0.relu:input"]
    mobile = build_model(ModelSpec(name="mobilenet"), 3, 1)
    assert default_taps(mobile, "last") == ["last"]
    assert default_taps(mobile, "stages", preactivation=True)[0] == "stages.0"  # ends linear: read as is
    assert default_taps(build_model(ModelSpec(name="test_tiny"), 3, 1), "stages") == ["stem"]


def test_explicit_taps_read_outputs_and_pre_activations() -> None:
    seen = {}

    class Capture(DistillLoss):
        default_taps = "last"

        def forward(self, batch: KDInputs) -> torch.Tensor:
            seen.update(batch.student_features)
            return batch.student_logits.sum() * 0

    loss = Capture()
    loss.taps = (["stages.0.1", "stages.0.2:input", "stages.0"], ["stem", "stem", "stem"])
    train_model(_model(STUDENT), _data(), TrainConfig(epochs=1), default_batch_size=16, seed=0,
                teacher=_model(TEACHER), losses=[(1.0, loss)])
    assert torch.equal(seen["stages.0.1"], seen["stages.0.2:input"])  # BN output = the ReLU's input
    assert (seen["stages.0.2:input"] < 0).any() and (seen["stages.0"] >= 0).all()


def test_wrong_tap_path_lists_the_valid_ones() -> None:
    spec = _spec("at", taps=TapsSpec(student=["stages.O"], teacher=["stages.1"]))
    with pytest.raises(ConfigError) as info:
        _distill([spec])
    message = str(info.value)
    assert "stages.distill.losses.0 (at)" in message and "student has no layer 'stages.O'" in message
    assert "did you mean 'stages.0'" in message and "valid layers: stem, stem.0," in message


def test_taps_are_checked_before_training_on_every_step_of_the_chain() -> None:
    specs = [_spec("fitnets", taps=TapsSpec(student="stages.1", teacher="stages.1"))]
    assistant = build_model(ModelSpec(name="plain_cnn", params={"channels": [8, 16, 16]}), 2, 1)
    student = build_model(STUDENT, 2, 1)
    check_losses(specs, "stages.distill", build_model(TEACHER, 2, 1), [assistant])
    with pytest.raises(ConfigError, match=r"losses.0 \(fitnets\): the student has no layer 'stages.1'"):
        check_losses(specs, "stages.distill", build_model(TEACHER, 2, 1), [assistant, student])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_torchscript_teacher_cannot_feed_a_feature_method() -> None:
    teacher = torch.jit.script(_model(TEACHER))
    with pytest.raises(ConfigError, match=r"losses.0 \(sp\): this method reads layer features, but the teacher is"
                                          r" a TorchScript module"):
        _distill([_spec("sp")], teacher=teacher)
    with pytest.raises(ConfigError, match=r"losses.0 \(sp\).*teacher is a TorchScript module"):
        check_losses([_spec("sp")], "stages.distill", None, [build_model(STUDENT, 2, 1)], "a TorchScript module")
    _distill([_spec("hinton")], teacher=teacher)  # logits only: fine


def test_a_layer_that_never_runs_as_a_module_is_named() -> None:
    exported = ExportedModule(torch.export.export(_model(TEACHER).eval(), (torch.zeros(2, 1, 8, 8),)).module())
    spec = _spec("sp", taps=TapsSpec(student="stages.0", teacher="graph.stages.1"))
    with pytest.raises(ConfigError, match=r"losses.0 \(sp\): teacher layer 'graph.stages.1' produced no output"):
        _distill([spec], teacher=exported)


def test_shapes_that_differ_with_adapters_off_name_the_loss_and_layers() -> None:
    spec = _spec("fitnets", adapters=False, taps=TapsSpec(student="stages.0", teacher="stages.0"))
    with pytest.raises(ConfigError, match=r"losses.0 \(fitnets\): student layer 'stages.0' gives \(2, 8, 4, 4\) but"
                                          r" teacher layer 'stages.0' gives \(2, 16, 4, 4\); the channels differ"):
        _distill([spec])
    spec = _spec("at", adapters=False, taps=TapsSpec(student="stem", teacher="stages.1"))
    with pytest.raises(ConfigError, match=r"losses.0 \(at\): student layer 'stem'.*the sizes differ"):
        _distill([spec])
    _distill([_spec("at", adapters=False, taps=TapsSpec(student="stages.0", teacher="stages.0"))])


def test_method_specific_shape_errors() -> None:
    with pytest.raises(ConfigError, match=r"\(fsp\): FSP relates consecutive layers"):
        _distill([_spec("fsp", taps=TapsSpec(student="stages.0", teacher="stages.0"))])
    with pytest.raises(ConfigError, match=r"\(at\): student layer 'head.1' gives \(2, 8\); this method needs"):
        _distill([_spec("at", taps=TapsSpec(student="head.1", teacher="head.1"))])


def test_bad_loss_specs() -> None:
    with pytest.raises(ConfigError, match=r"unknown loss 'fitnet' \(did you mean 'fitnets'"):
        build_losses([_spec("fitnet")], "stages.distill")
    with pytest.raises(ConfigError, match=r"\(hinton\): a logit loss reads no layers"):
        build_losses([_spec("hinton", taps=TapsSpec(student="stem", teacher="stem"))], "stages.distill")
    with pytest.raises(ConfigError, match="hint_epochs must be an integer >= 0"):
        build_losses([_spec("fitnets", params={"hint_epochs": -1})], "stages.distill")
    with pytest.raises(ValueError, match="as many layers"):
        TapsSpec(student=["stem", "stages.0"], teacher=["stem"])


# --- born-again generations ---------------------------------------------------------------------------

def test_born_again_generations_chain_students_of_one_family(tmp_path: Path) -> None:
    from edgekd.pipeline.stage import RunContext, StageRecord
    from edgekd.stages.distill import DistillStage
    from edgekd.stages.teacher import TeacherStage

    config = PipelineConfig.model_validate({
        "name": "ban", "data": DataConfig(image_size=8).model_dump(),
        "stages": {"teacher": {"model": {"name": "test_tiny"}, "train": {"epochs": 1}},
                   "distill": {"student": {"name": "test_tiny"}, "generations": 3, "train": {"epochs": 1}}},
    })
    ctx = RunContext(config=config, base_dir=tmp_path, run_dir=tmp_path, targets=[])
    teacher = StageRecord("teacher", tmp_path / "teacher", {})
    teacher.dir.mkdir()
    teacher.outputs.update(TeacherStage().run(ctx, teacher.dir, {}))
    (tmp_path / "distill").mkdir()
    outputs = DistillStage().run(ctx, tmp_path / "distill", {"teacher": teacher})
    assert list(outputs["models"]) == ["student_gen1", "student_gen2", "student"]
    assert [m["role"] for m in outputs["models"].values()] == ["generation", "generation", "student"]
    assert sorted(p.name for p in (tmp_path / "distill").iterdir()) == [
        "student.pt", "student_gen1.pt", "student_gen2.pt"]
