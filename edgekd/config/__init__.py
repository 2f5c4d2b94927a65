"""Typed configuration: pipelines and targets as pydantic models, YAML only stores them."""

from edgekd.config.loading import apply_overrides, load_yaml, validate
from edgekd.config.pipeline import (
    BudgetsConfig,
    DataConfig,
    DistillConfig,
    ExportConfig,
    LossSpec,
    ModelSpec,
    PipelineConfig,
    ProfileConfig,
    StagesConfig,
    TeacherConfig,
    TrainConfig,
)
from edgekd.config.target import ConnectionConfig, HardwareSpec, TargetConfig

__all__ = [
    "BudgetsConfig",
    "ConnectionConfig",
    "DataConfig",
    "DistillConfig",
    "ExportConfig",
    "HardwareSpec",
    "LossSpec",
    "ModelSpec",
    "PipelineConfig",
    "ProfileConfig",
    "StagesConfig",
    "TargetConfig",
    "TeacherConfig",
    "TrainConfig",
    "apply_overrides",
    "load_yaml",
    "validate",
]
