"""teacher: load the user's teacher, or train one of a registered family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgekd.fsutil import sha256_file
from edgekd.pipeline.stage import STAGES, RunContext, Stage, StageRecord
from edgekd.stages.chain import TEACHER_CHECKPOINT
from edgekd.stages.metrics import model_metrics


@STAGES.register("teacher")
class TeacherStage(Stage):
    name = "teacher"
    distributed = True

    def fingerprint_inputs(self, ctx: RunContext) -> dict[str, Any]:
        cfg = ctx.config.stages.teacher
        files = {}
        for field in ("weights", "torchscript", "export_archive"):
            path = getattr(cfg, field)
            if path is not None:
                resolved = path if path.is_absolute() else ctx.base_dir / path
                files[field] = sha256_file(resolved) if resolved.is_file() else "missing"
        return {"teacher": cfg.model_dump(mode="json"), "data": ctx.data_inputs(), "files": files}

    def run(self, ctx: RunContext, work_dir: Path, inputs: dict[str, StageRecord]) -> dict[str, Any]:
        from edgekd.distill import train_model
        from edgekd.models import build_model, load_teacher, save_checkpoint

        cfg = ctx.config.stages.teacher
        data = ctx.data()
        module = load_teacher(cfg, data.num_classes, data.input_shape, ctx.base_dir)
        history: list[dict[str, float]] = []
        if module is None:
            torch.manual_seed(ctx.config.seed)
            module = build_model(cfg.model, data.num_classes, data.input_shape[0])
            history = train_model(
                module, data.train, cfg.train, default_batch_size=ctx.config.data.batch_size,
                seed=ctx.config.seed, val_set=data.val, progress=ctx.progress, task="teacher",
            ).history
        if cfg.model is not None:
            save_checkpoint(work_dir / TEACHER_CHECKPOINT, module, cfg.model, data.num_classes, data.input_shape)
        family = cfg.model.name if cfg.model else "user"
        return {"model": model_metrics(module, data, role="teacher", family=family), "history": history}
