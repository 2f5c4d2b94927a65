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
        return {"distill": ctx.config.stages.distill.model_dump(mode="json"), "data": ctx.data_inputs()}

    def run(self, ctx: RunContext, work_dir: Path, inputs: dict[str, StageRecord]) -> dict[str, Any]:
        from edgekd.models import save_checkpoint

        cfg = ctx.config.stages.distill
        data = ctx.data()
        teacher = load_teacher_module(ctx, inputs["teacher"])
        student = ModelSpec.model_validate(inputs["search"].outputs["student"]) if "search" in inputs else cfg.student
        train = _StepTrainer(ctx)
        trained: list[torch.nn.Module] = []
        assistants, tried = cfg.assistants, None
        if assistants == "auto":
            choice = _auto_assistants(ctx, teacher, student, train)
            assistants, tried, trained = choice.assistants, choice.tried, choice.models
        steps = chain(assistants, student)
        # Born-again generations: earlier copies of the student, each the tutor of the next.
        steps[-1:-1] = [(f"student_gen{g}", student) for g in range(1, cfg.generations)]
        if cfg.baseline:
            steps.append((BASELINE, student))
        models: dict[str, Any] = {}
        histories: dict[str, Any] = {}
        tutor = teacher
        for index, (name, spec) in enumerate(steps, start=1):
            is_baseline = name == BASELINE
            if index <= len(trained):
                module = trained[index - 1]
            else:
                # The baseline starts from the student's initial weights: only the loss differs.
                module = train(spec, None if is_baseline else tutor, len(steps) - 1 if is_baseline else index,
                               name)[0]
            histories[name] = train.histories[id(module)]
            save_checkpoint(work_dir / checkpoint_name(name), module, spec, data.num_classes, data.input_shape)
            roles = {"student": "student", BASELINE: "baseline"}
            role = roles.get(name, "generation" if name.startswith("student_gen") else "assistant")
            models[name] = model_metrics(module, data, role=role, family=spec.name)
            if not is_baseline:
                tutor = module
        return {"models": models, "history": histories, "assistants_tried": tried}


class _StepTrainer:
    """Trains one model of the chain with the stage's config; the ``index``-th model of a chain
    (1 = first after the teacher) gets seed ``seed + index`` for its weights and batch order, so a
    chain ``assistants: auto`` trained is the chain it would train when given those assistants."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.histories: dict[int, list[dict[str, float]]] = {}
        """Each trained model's history, by ``id`` of the model (valid while the model lives)."""

    def __call__(self, spec: ModelSpec, tutor: torch.nn.Module | None, index: int,
                 name: str | None = None) -> tuple[torch.nn.Module, float]:
        from edgekd.distill import build_losses, evaluate, train_model
        from edgekd.models import build_model

        cfg, data = self.ctx.config.stages.distill, self.ctx.data()
        seed = self.ctx.config.seed + index
        torch.manual_seed(seed)
        module = build_model(spec, data.num_classes, data.input_shape[0])
        baseline = tutor is None
        history = train_model(
            module, data.train, cfg.train,
            default_batch_size=self.ctx.config.data.batch_size, seed=seed, val_set=data.val,
            teacher=tutor, losses=[] if baseline else build_losses(cfg.losses, "stages.distill"),
            ce_weight=1.0 if baseline else cfg.ce_weight, progress=self.ctx.progress,
            task=name or f"{spec.name} {spec.params}",
        ).history
        self.histories[id(module)] = history
        return module.eval(), evaluate(module, data.val)


def _auto_assistants(ctx: RunContext, teacher: torch.nn.Module, student: ModelSpec, train: _StepTrainer):
    """TAKD's question answered by measurement: chains of 0–2 assistants of the teacher's family
    (else the student's), one assistant at three sizes, each chain trained with the stage's own
    training and scored by its student's val accuracy; the best chain's models are kept."""
    from edgekd.errors import ConfigError
    from edgekd.search import build_space, choose_assistants
    from edgekd.search.spaces import SEARCH_SPACES

    data = ctx.data()
    if len(data.val) == 0:
        raise ConfigError("stages.distill.assistants: auto scores each chain on the val split, which is empty;"
                          " set data.val_fraction > 0 or list the assistants")
    teacher_model = ctx.config.stages.teacher.model
    family = teacher_model.name if teacher_model is not None and teacher_model.name in SEARCH_SPACES else student.name
    return choose_assistants(teacher, student, build_space(family, {}, "stages.distill.assistants"), data,
                             max_assistants=2, one_assistant_sizes=3, train=train)
