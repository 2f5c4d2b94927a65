"""profile: latency of every exported model on every target, at each batch size."""

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
        from edgekd.runtime import get_runtime

        settings = ctx.config.stages.profile
        export_record = inputs["export"]
        models = export_record.outputs["models"]
        records = []
        for target in ctx.targets:
            runtime = get_runtime(target)
            batches = settings.batch_sizes or target.batch_sizes
            task = f"profile {target.name}"
            ctx.progress.start(task, total=len(models) * len(batches))
            for name, exported in models.items():
                for batch in batches:
                    record = runtime.profile(
                        export_record.dir / exported["onnx"], model_name=name, batch=batch,
                        precision="fp32", settings=settings,
                    )
                    records.append(record.to_dict())
                    ctx.progress.advance(task, status=f"{name} b{batch}: p50 {record.p50_ms:.3f} ms")
            ctx.progress.finish(task)
        return {"latency": records}
