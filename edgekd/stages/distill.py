"""distill (TAKD): teacher → assistant_1 → … → student, each step distilled from the one before;
with ``generations: n`` the student comes last of n born-again generations (student_gen1 → …)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgekd.config import ModelSpec
from edgekd.pipeline.stage import STAGES, RunContext, Stage, StageRecord
from edgekd.stages.chain import chain, checkpoint_name, load_teacher_module
from edgekd.stages.metrics import model_metrics

BASELINE = "student_no_kd"


@STAGES.register("distill")
class DistillStage(Stage):
    name = "distill"
    distributed = True
    needs = ("teacher", "search")

    def fingerprint_inputs(self, ctx: RunContext) -> dict[str, Any]:
        return {"distill": ctx.config.stages.distill.model_dump(mode="json"),
                "data": ctx.config.data.model_dump(mode="json"), "seed": ctx.config.seed}

    def run(self, ctx: RunContext, work_dir: Path, inputs: dict[str, StageRecord]) -> dict[str, Any]:
        from edgekd.distill import build_losses, train_model
        from edgekd.models import build_model, save_checkpoint

        cfg = ctx.config.stages.distill
        data = ctx.data()
        seed = ctx.config.seed
        tutor = load_teacher_module(ctx, inputs["teacher"])
        student = ModelSpec.model_validate(inputs["search"].outputs["student"]) if "search" in inputs else cfg.student
        assistants, tried = cfg.assistants, None
        if assistants == "auto":
            assistants, tried = _auto_assistants(ctx, tutor, student)
        models: dict[str, Any] = {}
        histories: dict[str, Any] = {}
        steps = chain(assistants, student)
        # Born-again generations: earlier copies of the student, each the tutor of the next.
        steps[-1:-1] = [(f"student_gen{g}", student) for g in range(1, cfg.generations)]
        if cfg.baseline:
            steps.append((BASELINE, student))
        for index, (name, spec) in enumerate(steps, start=1):
            is_baseline = name == BASELINE
            # The baseline starts from the student's initial weights: only the loss differs.
            model_seed = seed + (len(steps) - 1 if is_baseline else index)
            torch.manual_seed(model_seed)
            module = build_model(spec, data.num_classes, data.input_shape[0])
            histories[name] = train_model(
                module, data.train, cfg.train,
                default_batch_size=ctx.config.data.batch_size, seed=model_seed, val_set=data.val,
                teacher=None if is_baseline else tutor,
                losses=[] if is_baseline else build_losses(cfg.losses, "stages.distill"),
                ce_weight=1.0 if is_baseline else cfg.ce_weight,
                progress=ctx.progress, task=name,
            ).history
            save_checkpoint(work_dir / checkpoint_name(name), module, spec, data.num_classes, data.input_shape)
            roles = {"student": "student", BASELINE: "baseline"}
            role = roles.get(name, "generation" if name.startswith("student_gen") else "assistant")
            models[name] = model_metrics(module, data, role=role, family=spec.name)
            if not is_baseline:
                tutor = module
        return {"models": models, "history": histories, "assistants_tried": tried}


def _auto_assistants(ctx: RunContext, teacher: torch.nn.Module, student: ModelSpec) -> tuple[list[ModelSpec], list]:
    """TAKD's question answered by measurement: chains of 0–2 assistants of the teacher's family
    (else the student's), each scored by the student's KD-proxy accuracy; the best chain wins."""
    from edgekd.search import ProxyConfig, build_space, choose_assistants
    from edgekd.search.spaces import SEARCH_SPACES

    teacher_model = ctx.config.stages.teacher.model
    family = teacher_model.name if teacher_model is not None and teacher_model.name in SEARCH_SPACES else student.name
    proxy = ProxyConfig(epochs=2, data_fraction=0.5, seed=ctx.config.seed)
    choice = choose_assistants(teacher, student, build_space(family, {}, "stages.distill.assistants"), ctx.data(),
                               proxy, assistant_proxy=proxy.model_copy(update={"epochs": 4}), progress=ctx.progress)
    return choice.assistants, choice.tried
