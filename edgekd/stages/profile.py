"""profile: latency of every exported model on every target, at each precision and batch size.

A target that fails (unreachable board, runtime missing) is recorded in ``failures`` and the
other targets are still profiled; where nothing was measured and the target has a hardware
spec, roofline estimates (``estimated: true``) stand in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.pipeline.stage import STAGES, RunContext, Stage, StageRecord


@STAGES.register("profile")
class ProfileStage(Stage):
    name = "profile"
    needs = ("export",)

    def fingerprint_inputs(self, ctx: RunContext) -> dict[str, Any]:
        return {"profile": ctx.config.stages.profile.model_dump(mode="json", exclude={"targets"}),
                "targets": [t.model_dump(mode="json") for t in ctx.targets]}

    def run(self, ctx: RunContext, work_dir: Path, inputs: dict[str, StageRecord]) -> dict[str, Any]:
        from edgekd.runtime.sweep import ModelFiles, profile_targets

        settings = ctx.config.stages.profile
        export_record = inputs["export"]
        models = [
            ModelFiles(
                name=name,
                onnx=export_record.dir / exported["onnx"],
                # "checkpoint" is relative to the run folder (e.g. distill/student.pt); a teacher
                # loaded from TorchScript has none, and torch targets then record a failure for it.
                checkpoint=ctx.run_dir / exported["checkpoint"] if exported.get("checkpoint") else None,
            )
            for name, exported in export_record.outputs["models"].items()
        ]
        result = profile_targets(models, ctx.targets, settings, batch_sizes=settings.batch_sizes,
                                 progress=ctx.progress)
        return {"latency": result.records, "failures": result.failures}
