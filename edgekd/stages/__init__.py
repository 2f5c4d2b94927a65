"""One thin file per stage: binds its typed config to the domain packages and declares its inputs."""

from __future__ import annotations

from pathlib import Path

from edgekd.config import PipelineConfig, TargetConfig
from edgekd.pipeline.stage import StageRecord
from edgekd.stages import distill, export, profile, teacher  # noqa: F401  (registers the stages)
from edgekd.stages.preflight import preflight

PIPELINE_ORDER = ("teacher", "distill", "export", "profile")
DEPLOYABLE = "student"


def deployable_onnx(records: dict[str, StageRecord]) -> list[tuple[Path, str]]:
    """(source file, published name) of the models a user deploys."""
    export_record = records["export"]
    onnx_name = export_record.outputs["models"][DEPLOYABLE]["onnx"]
    return [(export_record.dir / onnx_name, f"{DEPLOYABLE}.onnx")]


__all__ = ["DEPLOYABLE", "PIPELINE_ORDER", "deployable_onnx", "preflight"]
