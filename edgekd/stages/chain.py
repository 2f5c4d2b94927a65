"""The distillation chain's names and the teacher as later stages get it back."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgekd.config import ModelSpec
from edgekd.pipeline.stage import RunContext, StageRecord

TEACHER_CHECKPOINT = "teacher.pt"


def chain(assistants: list[ModelSpec], student: ModelSpec) -> list[tuple[str, ModelSpec]]:
    """The models the distill stage trains, in order: assistant_1 … assistant_n, student."""
    names = [(f"assistant_{i}", spec) for i, spec in enumerate(assistants, start=1)]
    return [*names, ("student", student)]


def checkpoint_name(model_name: str) -> str:
    return f"{model_name}.pt"


def load_teacher_module(ctx: RunContext, record: StageRecord) -> nn.Module:
    """The teacher: the checkpoint the teacher stage wrote, or the user's model loaded again."""
    from edgekd.models import load_checkpoint, load_teacher

    path: Path = record.dir / TEACHER_CHECKPOINT
    if path.exists():
        return load_checkpoint(path).module.eval()
    data = ctx.data()
    module = load_teacher(ctx.config.stages.teacher, data.num_classes, data.input_shape, ctx.base_dir)
    return module.eval()
