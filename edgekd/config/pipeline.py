"""The pipeline file: data, the stages that run on it, and the budgets that gate the exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from edgekd.config.base import StrictModel


class ModelSpec(StrictModel):
    """A model of a registered family, e.g. ``{name: resnet_cifar, params: {depth: 20, width: 16}}``."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class TapsSpec(StrictModel):
    """Layers a feature or relation loss reads, as module paths (``stages.1``, ``head.0``), in
    pairs: ``student[i]`` is matched with ``teacher[i]``. A path reads the module's output;
    ``path:input`` reads its first input (e.g. the pre-activation that a ReLU receives)."""

    student: list[str] = Field(min_length=1)
    teacher: list[str] = Field(min_length=1)

    @field_validator("student", "teacher", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _pairs(self) -> TapsSpec:
        if len(self.student) != len(self.teacher):
            raise ValueError(
                f"student and teacher must name as many layers (pairs), got {len(self.student)}"
                f" and {len(self.teacher)}"
            )
        return self


class LossSpec(StrictModel):
    """One registered distillation loss with its weight in the total loss."""

    name: str
    weight: float = Field(1.0, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    taps: TapsSpec | None = None
    """Layers a feature or relation loss reads; ``None`` picks the method's default layers of
    edgekd's model families (``stem``, ``stages.<i>``, ``last``)."""
    adapters: bool = True
    """Add 1x1 conv / linear regressors and spatial pooling where student and teacher shapes
    differ (trained with the student, never exported); ``false`` makes a mismatch an error."""


class TrainConfig(StrictModel):
    epochs: int = Field(10, ge=0)
    lr: PositiveFloat = 0.05
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    batch_size: PositiveInt | None = None
    """Defaults to ``data.batch_size``."""


class DataConfig(StrictModel):
    kind: str = "digits"
    """A registered dataset: ``digits`` (built in), ``image_folder``, ``cifar``."""
    path: Path | None = None
    image_size: PositiveInt | None = None
    """Resize images to this square size; ``None`` keeps the native size."""
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    batch_size: PositiveInt = 64

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        return self


class TeacherConfig(StrictModel):
    """Where the teacher comes from: exactly one of ``model`` (trained here, or loaded from
    ``weights``), ``torchscript``, ``export_archive`` or ``factory``."""

    model: ModelSpec | None = None
    weights: Path | None = None
    """A state dict for ``model``; without it the stage trains ``model``."""
    torchscript: Path | None = None
    export_archive: Path | None = None
    """A ``torch.export`` archive (``.pt2``)."""
    factory: str | None = None
    """``package.module:function`` returning an ``nn.Module``; runs only when named here."""
    factory_args: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TeacherConfig:
        sources = [n for n in ("model", "torchscript", "export_archive", "factory") if getattr(self, n)]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of model, torchscript, export_archive, factory"
                f" (got {', '.join(sources) or 'none'})"
            )
        if self.weights is not None and self.model is None:
            raise ValueError("weights needs model: the registered model the state dict belongs to")
        return self


def _hinton_default() -> list[LossSpec]:
    return [LossSpec(name="hinton", weight=0.9, params={"temperature": 4.0})]


def _hinton_at_t1() -> list[LossSpec]:
    return [LossSpec(name="hinton", weight=1.0, params={"temperature": 1.0})]


class DistillConfig(StrictModel):
    """Teacher → assistants (in order) → student; each step trains with ``losses`` plus
    ``ce_weight`` × cross-entropy on the labels."""

    assistants: list[ModelSpec] | Literal["auto"] = Field(default_factory=list)
    """The assistants in order, or ``auto``: chains of 0–2 assistants of the teacher's family (one
    assistant at three sizes) are each trained with ``train`` and the chain whose student scores best
    on val is kept, its models as trained (Mirzadeh et al. 2020: the capacity gap decides)."""
    student: ModelSpec | None = None
    """Required unless ``stages.search`` picks the student."""
    losses: list[LossSpec] = Field(default_factory=_hinton_default)
    ce_weight: float = Field(0.1, ge=0)
    train: TrainConfig = TrainConfig()
    baseline: bool = False
    """Also train the student on labels alone, so the report shows what KD added."""
    generations: int = Field(1, ge=1)
    """Born-again networks (Furlanello et al. 2018): ``n > 1`` trains the student ``n`` times,
    each generation distilled from the one before; the last generation is the student."""


class ExportConfig(StrictModel):
    opset: int = Field(17, ge=13)
    atol: PositiveFloat = 1e-3
    """Largest allowed |ONNX Runtime − torch| on any logit of the parity inputs."""
    min_top1_agreement: float = Field(0.99, ge=0, le=1)
    parity_samples: PositiveInt = 512


class ProfileConfig(StrictModel):
    targets: list[str] = Field(default_factory=lambda: ["local-cpu"], min_length=1)
    batch_sizes: list[PositiveInt] | None = None
    """Overrides each target's own batch sizes."""
    warmup_runs: int = Field(10, ge=0)
    min_time_s: float = Field(1.0, ge=0)
    min_runs: PositiveInt = 20
    max_runs: PositiveInt = 100_000
    layer_profile_runs: int = Field(20, ge=0)
    """Runs under ONNX Runtime's profiler for the per-layer table; 0 turns it off."""
    top_layers: PositiveInt = 10


class QKDConfig(StrictModel):
    """Quantization-aware distillation (Kim et al. 2019) of the distilled student to INT8:
    self-studying → co-studying → tutoring, each phase skipped with 0 epochs."""

    bits: int = 8
    """Only 8 exports to ONNX QuantizeLinear/DequantizeLinear."""

    @field_validator("bits")
    @classmethod
    def _exportable_bits(cls, bits: int) -> int:
        if bits != 8:
            raise ValueError(f"{bits}-bit models cannot be exported: ONNX QuantizeLinear/DequantizeLinear"
                             " (ONNX Runtime, TensorRT) take 8 bits; set bits: 8")
        return bits

    calibration_samples: PositiveInt = 256
    self_studying: TrainConfig = TrainConfig(epochs=2, lr=0.01)
    """The quantized student alone, on labels."""
    co_studying: TrainConfig = TrainConfig(epochs=2, lr=0.005)
    """The quantized student and the stage's own copy of the teacher, each learning from the other."""
    co_studying_teacher: TrainConfig | None = None
    """The teacher copy's optimizer in co-studying (its ``epochs`` is ignored: it trains for
    ``co_studying.epochs``); defaults to ``co_studying``. A converged teacher fine-tuned at the
    student's rate towards the student's soft outputs can lose accuracy and teach worse; the
    quickstart uses a 10× lower rate (chosen on its validation split, ``docs/benchmarks.md``)."""
    tutoring: TrainConfig = TrainConfig(epochs=4, lr=0.005)
    """The quantized student distilled from the (co-studied, now frozen) teacher."""
    losses: list[LossSpec] = Field(default_factory=_hinton_at_t1)
    """Co-studying and tutoring's distillation losses. Default: Hinton KD at T = 1 beside an equal
    ``ce_weight``: at 8 bits a student already distilled at T = 4 gains more from staying close to
    the labels (chosen on val over 12 quickstart splits, ``docs/benchmarks.md``)."""
    ce_weight: float = Field(1.0, ge=0)
    baselines: bool = True
    """Also make ONNX Runtime post-training quantization and label-only NNCF QAT (same epochs)."""
    precision: Literal["auto", "fp32", "int8"] = "auto"
    """The deployable model: ``auto`` takes INT8 where it is at least ``min_speedup`` times faster on
    the first target and loses at most ``max_accuracy_drop`` against the FP32 student on the
    validation split (the test split when there is no validation split)."""
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)
    min_speedup: float = Field(1.05, ge=1)
    """``auto`` takes INT8 only where it is at least this many times faster than FP32 (p50): two
    timings of one model differ by up to 4% here (``docs/targets.md``), so a smaller gain is noise."""
    int8_form: Literal["auto", "tensorrt", "onnxruntime"] = "auto"
    """``tensorrt``: signed symmetric Q/DQ everywhere (TensorRT's explicit quantization).
    ``onnxruntime``: unsigned after each ReLU, which ONNX Runtime fuses into QLinearConv (faster
    there, rejected by TensorRT). ``auto``: ``onnxruntime`` when every target runs ONNX Runtime on
    the CPU, else ``tensorrt``."""

    @property
    def qat_baseline_train(self) -> TrainConfig:
        """The label-only QAT baseline's training: ``self_studying``'s optimizer for as many epochs
        as the three phases together, so that QKD and QAT get the same budget."""
        epochs = self.self_studying.epochs + self.co_studying.epochs + self.tutoring.epochs
        return self.self_studying.model_copy(update={"epochs": epochs})


class SearchConfig(StrictModel):
    """Architecture-aware student search (Search to Distill, Liu et al. 2020): the student this
    teacher teaches best within a latency budget on a target; it becomes the distill stage's student."""

    space: str = "plain_cnn"
    """A registered search space: ``plain_cnn``, ``resnet_cifar``, ``mobilenet``."""
    choices: dict[str, Any] = Field(default_factory=dict)
    """The space's choices, e.g. ``{channels: [[8, 16], [16, 32]]}``; empty: the space's defaults."""
    target: str | None = None
    """A profiled target; default the first of ``stages.profile.targets``."""
    budget_ms: PositiveFloat | None = None
    """p50 budget at batch 1; default ``budgets.max_latency_p50_ms`` of the target."""
    budget_from: ModelSpec | None = None
    """"As fast as this model": its p50 on the target, timed when the search starts, is the budget
    (instead of ``budget_ms``); a candidate with its architecture is not timed again."""
    trials: PositiveInt = 12
    sampler: Literal["tpe", "nsga2"] = "tpe"
    latency: Literal["measured", "table"] = "measured"
    reward: dict[str, Any] = Field(default_factory=dict)
    """``w_under`` / ``w_over`` exponents of ACC × (LAT/T)^w (default −0.07 both: MnasNet's soft form)."""
    proxy: dict[str, Any] = Field(default_factory=dict)
    """The KD proxy that scores a candidate: ``epochs``, ``data_fraction``, ``lr``, ``losses``, …"""
    storage: str | None = None
    """Any SQLAlchemy URL that several ``edgekd search-worker`` can share; default SQLite in the run folder."""
    study_name: str | None = None

    @model_validator(mode="after")
    def _one_budget(self) -> SearchConfig:
        if self.budget_ms is not None and self.budget_from is not None:
            raise ValueError("budget_ms and budget_from both set: give the budget in ms or as a model, not both")
        if self.budget_from is not None and self.latency == "table":
            raise ValueError("budget_from needs latency: measured (a timed budget and predicted candidates would be"
                             " on two scales); give budget_ms with a latency table")
        return self


class StagesConfig(StrictModel):
    teacher: TeacherConfig
    search: SearchConfig | None = None
    """Absent: the distill stage's ``student`` is used as given."""
    distill: DistillConfig
    qkd: QKDConfig | None = None
    """Absent: no INT8 model."""
    export: ExportConfig = ExportConfig()
    profile: ProfileConfig = ProfileConfig()

    @model_validator(mode="after")
    def _a_student(self) -> StagesConfig:
        if self.distill.student is None and self.search is None:
            raise ValueError("distill.student: required key is missing (or add stages.search to pick the student)")
        return self


class BudgetsConfig(StrictModel):
    """Limits on the deployable student; any one missed makes ``edgekd compress`` exit 1."""

    min_accuracy: float | None = Field(None, ge=0, le=1)
    max_latency_p50_ms: dict[str, PositiveFloat] = Field(default_factory=dict)
    """Target name → limit on p50 at the smallest profiled batch size."""
    max_size_bytes: PositiveInt | None = None


class PipelineConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: int = 0
    data: DataConfig = DataConfig()
    stages: StagesConfig
    budgets: BudgetsConfig = BudgetsConfig()
